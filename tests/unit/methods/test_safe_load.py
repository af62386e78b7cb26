"""init_weights_from loads tensors only: a pickled object is refused with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from debiaslit.errors import ConfigError
from debiaslit.methods import ERM


class Payload:
    """Any class: unpickling it would import and run code."""


def test_weights_are_copied(tmp_path: Path) -> None:
    source = ERM(backbone="tiny-bert")
    path = tmp_path / "ok.ckpt"
    torch.save({"state_dict": source.state_dict()}, path)
    torch.manual_seed(123)
    target = ERM(backbone="tiny-bert", init_weights_from=str(path))
    for key, value in source.model.state_dict().items():
        assert torch.equal(target.model.state_dict()[key], value), key


def test_arbitrary_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "extra": Payload()}, path)
    with pytest.raises(ConfigError, match="evil.ckpt.*refused"):
        ERM(backbone="tiny-bert", init_weights_from=str(path))


def test_missing_file_is_named_with_its_resolved_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"'nope.ckpt' \\({tmp_path}/nope.ckpt\\) does not exist"):
        ERM(backbone="tiny-bert", init_weights_from="nope.ckpt")
