"""Where a split comes from: one small class per kind of source, chosen in YAML by ``class_path``.

Every source only says how to read or generate its rows (``read``); the shared ``load`` reports the
dropped rows, applies ``limit`` and refuses an empty result, so those rules hold for every source alike.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

from lightning.pytorch.utilities import rank_zero_info

from debiaslit.data.hans import generate_hans_like, read_hans
from debiaslit.data.nli_readers import NLIReadResult, load_nli_from_hub, read_nli_file
from debiaslit.data.schema import NLIExample
from debiaslit.data.synthetic import generate_shortcut_nli
from debiaslit.data.tables import read_table
from debiaslit.errors import ConfigError, DataFormatError


class NLISource(ABC):
    """One split's examples; ``limit`` keeps a ``seed``-ed random subset of that many (ids sorted)."""

    def __init__(self, limit: int | None = None, seed: int = 0) -> None:
        self.limit = limit
        self.seed = seed

    @abstractmethod
    def read(self, name: str) -> NLIReadResult:
        """Every example of the source and the dropped rows per reason; ``name`` labels example ids."""

    def load(self, name: str) -> list[NLIExample]:
        """The examples of this source as configured; ``name`` labels errors and example ids."""
        result = self.read(name)
        examples, skipped = result.examples, result.skipped
        for reason, count in skipped.items():
            rank_zero_info(f"[debiaslit] {name}: dropped {count} rows ({reason})")
        if self.limit is not None:
            if self.limit < 1:
                raise ConfigError(f"data source '{name}': limit must be >= 1, got {self.limit}")
            if self.limit < len(examples):
                examples = random.Random(self.seed).sample(examples, self.limit)
                examples.sort(key=lambda e: e.uid)
        if not examples:
            dropped = ", ".join(f"{n} by filter {why}" for why, n in skipped.items()) or "none dropped"
            raise DataFormatError(f"data source '{name}' ({self!r}) yielded no examples ({dropped})")
        return examples

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class NLIFile(NLISource):
    """A local GLUE/SNLI tsv, MultiNLI/SNLI jsonl or McCoy et al.'s MNLI dev-correctness tsv.

    ``format``: ``auto`` (from the extension and header) or one of
    :data:`debiaslit.data.nli_readers.FORMATS`. Example ids are prefixed with the file stem.
    """

    def __init__(self, path: str, format: str = "auto", limit: int | None = None, seed: int = 0) -> None:
        super().__init__(limit, seed)
        self.path = path
        self.format = format

    def read(self, name: str) -> NLIReadResult:
        return read_nli_file(self.path, fmt=self.format)


class TableNLI(NLISource):
    """Any TSV / CSV / JSONL with premise, hypothesis and label columns (see :func:`read_table`).

    ``columns`` maps ``premise``, ``hypothesis``, ``label`` (and optionally ``id``) to column names,
    or to 0-based positions; with ``header: false`` positions are the only choice (default 0, 1, 2).
    ``label_map`` maps raw labels (e.g. ``0``) to NLI label names; without it labels are matched by name.
    """

    def __init__(
        self,
        path: str,
        format: str = "auto",
        columns: dict[str, str | int] | None = None,
        header: bool = True,
        label_map: dict[str | int, str] | None = None,
        limit: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(limit, seed)
        self.path = path
        self.format = format
        self.columns = columns
        self.header = header
        self.label_map = label_map

    def read(self, name: str) -> NLIReadResult:
        return read_table(self.path, self.format, self.columns, self.header, self.label_map)


class HubNLI(NLISource):
    """``nyu-mll/glue`` (its mnli config), ``nyu-mll/multi_nli`` or ``stanfordnlp/snli`` from the Hub."""

    def __init__(self, path: str, split: str = "train", limit: int | None = None, seed: int = 0) -> None:
        super().__init__(limit, seed)
        self.path = path
        self.split = split

    def read(self, name: str) -> NLIReadResult:
        return load_nli_from_hub(self.path, split=self.split)


class HansFile(NLISource):
    """The official HANS ``heuristics_evaluation_set.txt`` (or a folder holding it)."""

    def __init__(self, path: str, limit: int | None = None, seed: int = 0) -> None:
        super().__init__(limit, seed)
        self.path = path

    def read(self, name: str) -> NLIReadResult:
        return NLIReadResult(read_hans(self.path))


class HansGenerated(NLISource):
    """Our HANS-style generator, ``n`` pairs per subcase (3 heuristics x 2 labels x 5 subcases)."""

    def __init__(self, n: int = 1000, limit: int | None = None, seed: int = 0) -> None:
        super().__init__(limit, seed)
        self.n = n

    def read(self, name: str) -> NLIReadResult:
        return NLIReadResult(generate_hans_like(n_per_subcase=self.n, seed=self.seed))


class ShortcutSynthetic(NLISource):
    """``n`` generated 3-way pairs whose word overlap predicts the label at ``shortcut_rate``."""

    def __init__(
        self, n: int = 1000, shortcut_rate: float = 0.9, limit: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(limit, seed)
        self.n = n
        self.shortcut_rate = shortcut_rate

    def read(self, name: str) -> NLIReadResult:
        return NLIReadResult(generate_shortcut_nli(self.n, self.shortcut_rate, self.seed, source=name))
