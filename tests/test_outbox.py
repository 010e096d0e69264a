"""The outbox's states and transitions, on the data dir layout every existing data dir has."""

from __future__ import annotations

from pathlib import Path

from cdc_core.outbox import EntryState, Outbox
from cdc_core.state import State


def _meta(run_id: str, **extra) -> dict:
    return {"table": "t", "run_id": run_id, "rows": 1, **extra}


def _staged(outbox: Outbox, run_id: str) -> Path:
    folder = outbox.start("t", run_id)
    (folder / "snapshot.parquet").write_bytes(b"not parquet, only bytes")
    return folder


def test_every_state_is_one_folder_of_the_layout(tmp_path: Path):
    outbox = Outbox(tmp_path)
    assert {state: outbox.folder(state, "t", "R").relative_to(tmp_path).as_posix() for state in EntryState} == {
        EntryState.STAGING: "outbox/t/.staging-R", EntryState.PENDING: "outbox/t/R",
        EntryState.PREVIEW: "outbox/t/.preview-R", EntryState.HELD: "outbox/t/.preview-R",
        EntryState.SENT: "sent/t/R", EntryState.DISCARDED: "discarded/t/R"}


def test_an_entry_goes_from_staging_to_pending_to_sent(tmp_path: Path):
    outbox = Outbox(tmp_path)
    folder = _staged(outbox, "20250101_000000")
    assert folder.name == ".staging-20250101_000000" and outbox.pending("t") == []
    entry = outbox.seal(folder, _meta("20250101_000000"))
    assert entry.state is EntryState.PENDING and entry.dir == tmp_path / "outbox/t/20250101_000000"
    assert outbox.pending("t") == [entry] and outbox.run_ids() == ["20250101_000000"]
    sent = outbox.send(entry, keep=5)
    assert sent.state is EntryState.SENT and (tmp_path / "sent/t/20250101_000000/snapshot.parquet").is_file()
    assert outbox.pending("t") == [] and outbox.sent("t", "20250101_000000") == sent


def test_only_the_newest_sent_and_discarded_entries_are_kept(tmp_path: Path):
    outbox = Outbox(tmp_path)
    runs = [f"2025010{day}_000000" for day in range(1, 6)]
    for run in runs:
        outbox.send(outbox.seal(_staged(outbox, run), _meta(run)), keep=2)
    assert sorted(p.name for p in (tmp_path / "sent/t").iterdir()) == runs[-2:]
    for run in runs:
        lost = outbox.discard(outbox.seal(_staged(outbox, run), _meta(run)))
        assert lost.state is EntryState.DISCARDED
    assert sorted(p.name for p in (tmp_path / "discarded/t").iterdir()) == runs[-3:]


def test_a_preview_replaces_the_older_one_and_a_held_one_says_so(tmp_path: Path):
    outbox = Outbox(tmp_path)
    first = outbox.seal_preview(_staged(outbox, "20250101_000000"), _meta("20250101_000000"))
    assert first.state is EntryState.PREVIEW and outbox.held("t") is None
    held = outbox.hold(_staged(outbox, "20250102_000000"), _meta("20250102_000000", held="a guard said no"))
    assert held.state is EntryState.HELD and held.dir.name == ".preview-20250102_000000"
    assert outbox.preview("t", "20250101_000000") is None and outbox.held("t") == held
    assert outbox.pending("t") == [] and outbox.run_ids() == []  # neither is waiting to be published
    pending = outbox.release(held)
    assert pending.state is EntryState.PENDING and outbox.held("t") is None and outbox.pending("t") == [pending]


def test_leftovers_of_a_killed_run_are_cleaned_and_a_dropped_entry_is_gone(tmp_path: Path):
    outbox = Outbox(tmp_path)
    leftover = _staged(outbox, "20250101_000000")
    outbox.clean("t")
    assert not leftover.exists()
    preview = outbox.seal_preview(_staged(outbox, "20250102_000000"), _meta("20250102_000000"))
    outbox.drop(preview)
    assert not preview.dir.exists() and outbox.preview("t", "20250102_000000") is None


def test_the_state_commits_through_the_outbox(tmp_path: Path):
    state = State(tmp_path)
    entry = state.outbox.seal(_staged(state.outbox, "20250101_000000"), _meta("20250101_000000"))
    assert state.latest_run_id() == "20250101_000000"
    committed = state.commit(entry, keep=3)
    assert committed.run_id == "20250101_000000" and committed.snapshot.is_file()
    assert state.outbox.sent("t", "20250101_000000") is not None and state.outbox.pending("t") == []
