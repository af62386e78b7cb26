"""Where a split comes from: a file, the Hub, the HANS file, or one of our generators."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lightning.pytorch.utilities import rank_zero_info

from debiaslit.data.schema import NLIExample
from debiaslit.errors import ConfigError, DataFormatError

SOURCE_KINDS = ("file", "hub", "hans_file", "hans_generated", "shortcut_synthetic")


@dataclass
class NLISource:
    """Where one split comes from.

    ``kind``: ``file`` (GLUE tsv, MultiNLI/SNLI jsonl or the MNLI dev-correctness tsv; ``path``),
    ``hub`` (``path`` = Hub dataset ``nyu-mll/glue`` (MNLI), ``nyu-mll/multi_nli`` or
    ``stanfordnlp/snli``, with ``split``), ``hans_file``
    (official ``heuristics_evaluation_set.txt``), ``hans_generated`` (our HANS-style generator,
    ``n`` per subcase) or ``shortcut_synthetic`` (``n`` pairs whose word overlap predicts the
    label at ``shortcut_rate``). ``limit`` keeps a seeded random subset of that many examples.
    """

    kind: str = "file"
    path: str | None = None
    split: str | None = None
    format: str = "auto"
    n: int = 1000
    shortcut_rate: float = 0.9
    seed: int = 0
    limit: int | None = None


def load_source(source: NLISource, name: str) -> list[NLIExample]:
    """Read or generate the examples of one source; ``name`` labels errors and example ids."""
    from debiaslit.data import hans, nli_readers, synthetic

    if source.kind not in SOURCE_KINDS:
        raise ConfigError(
            f"data source '{name}': unknown kind '{source.kind}'; expected one of {SOURCE_KINDS}"
        )
    if source.kind in ("file", "hub", "hans_file") and not source.path:
        raise ConfigError(f"data source '{name}': kind '{source.kind}' needs `path`")
    if source.kind == "file":
        result = nli_readers.read_nli_file(source.path, fmt=source.format)
        examples, skipped = result.examples, result.skipped
    elif source.kind == "hub":
        result = nli_readers.load_nli_from_hub(source.path, split=source.split or "train")
        examples, skipped = result.examples, result.skipped
    elif source.kind == "hans_file":
        examples, skipped = hans.read_hans(source.path), {}
    elif source.kind == "hans_generated":
        examples, skipped = hans.generate_hans_like(n_per_subcase=source.n, seed=source.seed), {}
    else:
        examples = synthetic.generate_shortcut_nli(
            n=source.n, shortcut_rate=source.shortcut_rate, seed=source.seed, source=name
        )
        skipped = {}
    for reason, count in skipped.items():
        rank_zero_info(f"[debiaslit] {name}: dropped {count} rows ({reason})")
    if source.limit is not None:
        if source.limit < 1:
            raise ConfigError(f"data source '{name}': limit must be >= 1, got {source.limit}")
        if source.limit < len(examples):
            examples = random.Random(source.seed).sample(examples, source.limit)
            examples.sort(key=lambda e: e.uid)
    if not examples:
        dropped = (
            ", ".join(f"{count} by filter {reason}" for reason, count in skipped.items()) or "none dropped"
        )
        raise DataFormatError(
            f"data source '{name}' ({source.kind} {source.path or ''}) yielded no examples ({dropped})"
        )
    return examples
