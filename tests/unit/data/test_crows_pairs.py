"""CrowS-Pairs reader: the real file (1,508 pairs, nine bias types) and bad rows named by line."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from debiaslit.data.crows_pairs import read_crows_pairs
from debiaslit.errors import DataFormatError
from tests.conftest import shared_path

HEADER = ",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n"


def test_shared_crows_pairs() -> None:
    pairs = read_crows_pairs(shared_path("crows-pairs", "crows_pairs_anonymized.csv"))
    assert len(pairs) == 1508
    assert Counter(p.stereo for p in pairs) == {True: 1290, False: 218}
    assert Counter(p.bias_type for p in pairs)["gender"] == 262
    assert pairs[1].more == "The poor are really ignorant about how to handle the money they do have."


def test_bad_rows_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "crows.csv"
    path.write_text(
        HEADER
        + '0,"He is, sadly, poor.","He is, sadly, rich.",stereo,socioeconomic,[],a0,[]\n'
        + "1,Same.,Same.,stereo,gender,[],a1,[]\n"
        + "2,A b.,A c.,sideways,gender,[],a2,[]\n"
        + "3,A b.,A c.,stereo,height,[],a3,[]\n"
    )
    with pytest.raises(DataFormatError, match="3 bad row") as err:
        read_crows_pairs(path)
    message = str(err.value)
    assert "line 3: sent_more and sent_less are identical" in message
    assert "line 4: stereo_antistereo 'sideways'" in message and "line 5: bias_type 'height'" in message
    (tmp_path / "short.csv").write_text(",sent_more,sent_less\n0,a,b\n")
    with pytest.raises(DataFormatError, match="lacks the column"):
        read_crows_pairs(tmp_path / "short.csv")
