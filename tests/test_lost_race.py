"""A lost race is one complete, unchanging error, and one rule tells whether the winner holds the same data."""

from __future__ import annotations

from pathlib import Path

from cdc_core.commit import LostRace
from cdc_core.publishing import Winner, winner_with_same_data


def _lost(**extra) -> LostRace:
    return LostRace('Table "t": another writer committed run B on the same parent first', table="t", parent="A",
                    winner={"run_id": "B", "source_version": "7"}, **extra)


def test_keeping_the_lost_run_makes_a_new_complete_error_and_leaves_the_first_as_it_was(tmp_path: Path):
    first = _lost(version="7")
    kept = first.kept(tmp_path / "snapshot.parquet")
    assert kept is not first and str(kept) == str(first)
    assert (kept.table, kept.parent, kept.winner, kept.version) == (first.table, first.parent, first.winner, "7")
    assert kept.snapshot == tmp_path / "snapshot.parquet" and first.snapshot is None


def test_a_winner_that_captured_the_same_source_version_holds_the_same_data(tmp_path: Path):
    # nothing is read or diffed (no cycle is needed): the source version alone tells
    lost = _lost(version="7").kept(tmp_path / "snapshot.parquet")
    assert winner_with_same_data(None, None, None, lost) == Winner("B", "7")
    assert str(Winner("B", "7")) == "another writer captured source version 7 first (run B)"
    assert str(Winner("B")) == "another writer committed the same data first (run B)"


def test_a_run_that_was_not_kept_is_never_the_same_data(tmp_path: Path):
    assert winner_with_same_data(None, None, None, _lost(version="7")) is None  # dropped before it was published
    other = _lost(version="8").kept(tmp_path / "snapshot.parquet")
    assert winner_with_same_data(None, None, None, other, diff=False) is None  # another version, and no diff
