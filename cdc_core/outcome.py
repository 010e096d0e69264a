"""What the last cycles did, per table, kept in `data_dir/outcome.json` so that it survives between `--once` runs.

It feeds the `recovered` notification (a table that failed or was held last time captured fine now) and the
Prometheus metrics (last success, last run's changes, running totals). Written atomically after every cycle that
is not a dry run; a table not in a cycle (`--tables`) keeps its last record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .jsonfile import read_json, write_json_atomic
from .outbox import Outbox

if TYPE_CHECKING:
    from .report import RunReport

CAPTURED = ("full_load", "changes", "unchanged", "skipped")  # the table is where the source is
PROBLEMS = ("failed", "held")  # the table's committed state stayed behind
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
OPS = ("I", "U", "D")


def outcome_path(data_dir: Path) -> Path:
    return Path(data_dir) / "outcome.json"


def load_outcome(data_dir: Path) -> dict[str, Any]:
    """The recorded outcome: `{"cycle": {...}, "tables": {name: {...}}}` (empty before the first cycle)."""
    data = read_json(outcome_path(data_dir)) or {}
    return {"cycle": data.get("cycle") or {}, "tables": data.get("tables") or {}}


def record_outcome(data_dir: Path, report: RunReport) -> dict[str, dict[str, Any]]:
    """Record a finished cycle's report; returns each table's record as it was before this cycle."""
    old = load_outcome(data_dir)
    finished = report.finished_at or report.started_at
    tables = dict(old["tables"])
    for t in report.tables:
        before = tables.get(t.table, {})
        totals = {op: int(before.get("changes_total", {}).get(op, 0)) for op in OPS}
        published = [t.counts] if t.status == "changes" else []
        published += [_sent_counts(data_dir, t.table, run_id) for run_id in t.published_pending]
        for counts in published:
            totals = {op: totals[op] + int(counts.get(op, 0)) for op in OPS}
        tables[t.table] = {
            "status": t.status, "run_id": report.run_id, "finished_at": _time(finished),
            "counts": {op: int(t.counts.get(op, 0)) for op in OPS}, "rows": t.rows, "warnings": len(t.warnings),
            "error": t.error, "changes_total": totals,
            "last_success_at": _time(finished) if t.status in CAPTURED else before.get("last_success_at"),
        }
    cycle = {"run_id": report.run_id, "source": report.source, "lake": report.lake,
             "source_version": report.source_version, "started_at": _time(report.started_at),
             "finished_at": _time(finished), "seconds": report.timings.get("cycle"),
             "tables": [t.table for t in report.tables]}
    write_json_atomic(outcome_path(data_dir), {"cycle": cycle, "tables": tables})
    return old["tables"]


def _sent_counts(data_dir: Path, table: str, run_id: str) -> dict[str, int]:
    """The I/U/D counts of a run that was pending in the outbox and went out in this cycle (from its entry)."""
    entry = Outbox(Path(data_dir)).sent(table, run_id)
    return (entry.meta.get("counts") if entry else None) or {}


def parse_time(text: str | None) -> float | None:
    """Unix seconds of a recorded UTC time, None when there is none."""
    if not text:
        return None
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def _time(moment: datetime) -> str:
    return moment.strftime(TIME_FORMAT)
