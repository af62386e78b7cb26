from debiaslit.cli import main

main()
