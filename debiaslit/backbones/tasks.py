"""Which transformers Auto class builds a backbone for each task."""

from __future__ import annotations

from debiaslit.errors import ConfigError

#: Task name -> transformers Auto class.
TASKS: dict[str, str] = {
    "sequence-classification": "AutoModelForSequenceClassification",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "base": "AutoModel",
}


def auto_class(task: str) -> type:
    """The transformers Auto class for ``task``; ConfigError lists the valid tasks."""
    import transformers

    if task not in TASKS:
        raise ConfigError(f"unknown backbone task {task!r}; valid tasks: {', '.join(TASKS)}")
    return getattr(transformers, TASKS[task])
