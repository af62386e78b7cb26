"""Small helpers every layer may use: file locations, atomic writes."""
