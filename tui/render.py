"""Rich text for the screens: counts coloured by op, sizes, ages, sparklines of recent captures."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from rich.text import Text

from cdc_core.report import TableReport

from .data import OPS, RowDetail, TableOverview

OP_STYLES = {"I": "bold green", "U": "bold yellow", "D": "bold red"}
OP_NAMES = {"I": "inserts", "U": "updates", "D": "deletes"}
CHANGED_STYLE = "bold underline"  # a changed cell of a U row: reads without colour too
BLOCKS = "▁▂▃▄▅▆▇█"
NAME_WIDTH = 18
STATUS = {"full_load": "first capture", "changes": "changes", "unchanged": "no changes",
          "skipped": "skipped", "failed": "FAILED", "pending": "…", "held": "held"}


def human_bytes(size: int) -> str:
    """1536 → '1.5 KB'."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


def ago(stamp: str, now: datetime) -> str:
    """'2026-11-26T08:07:02Z' → '3 h ago' relative to `now`."""
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return stamp
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def short_path(url: str) -> str:
    """A lake or folder for display: s3 URLs as they are, local folders relative to the working dir when inside it."""
    if url.startswith("s3://"):
        return url
    path = Path(url)
    try:
        return f"{path.relative_to(Path.cwd()).as_posix()}/"
    except ValueError:
        return str(path)


def counts(values: dict[str, int], width: int = 0) -> Text:
    """'I 30  U 163  D 10', each op in its colour; `width` right-aligns the numbers."""
    text = Text()
    for op in OPS:
        if op != "I":
            text.append("  ")
        text.append(op, OP_STYLES[op])
        text.append(f" {values.get(op, 0):>{width},}")
    return text


def spark(values: Sequence[int], top: int) -> str:
    """One block per value, scaled to `top`; a zero is a space so that 'nothing' reads as nothing."""
    if top <= 0:
        return " " * len(values)
    return "".join(" " if v <= 0 else BLOCKS[min(len(BLOCKS) - 1, (v * len(BLOCKS) - 1) // top)] for v in values)


def overview_header() -> Text:
    """The column titles above the Tables list, aligned with `overview_line`."""
    return Text(f"{'table':<{NAME_WIDTH}}{'last run':<15}  {'captured':>10}  last change set", "bold dim")


def overview_line(item: TableOverview, now: datetime) -> Text:
    """One line of the Tables list: name, last run, its age, its I/U/D counts, pending outbox runs."""
    line = Text(f"{item.name:<{NAME_WIDTH}}", "bold")
    if item.error:
        return line.append(item.error, "red")
    if item.committed is None:
        line.append("never captured", "dim")
    else:
        line.append(f"{item.committed.run_id}  {ago(item.committed.committed_at, now):>10}  ")
        last = item.last
        if last is None:
            line.append("counts not in the lake", "dim")
        elif last.get("kind") == "full_load":
            line.append(f"{'first capture':<22}", "cyan")
        else:
            line.append_text(counts(last.get("counts", {}), width=4))
    if item.pending:
        line.append(f" ⧗{len(item.pending)}", "bold magenta")
    return line


def overview_detail(item: TableOverview, now: datetime, *, quality: bool = False) -> Text:
    """The highlighted table: key, last capture in full, pending runs and the I/U/D history of recent captures;
    with `quality`, its key and the data quality per column instead."""
    table = item.table
    text = Text.assemble((table.name, "bold"), f"  key {', '.join(table.pk)}",
                         f"  date {table.date_field}" if table.date_field else "", f"  sep {table.sep!r}\n")
    if item.error:
        return text.append(item.error, "red")
    if quality:
        return text.append_text(data_quality(item.history))
    if item.committed is None:
        text.append("not captured yet: the first capture writes a full load\n", "dim")
    else:
        c, last = item.committed, item.last or {}
        version = f" · source version {c.source_version}" if c.source_version else ""
        text.append(f"last capture run {c.run_id} ({ago(c.committed_at, now)}){version} · {c.rows:,} rows"
                    f"{table_version(last)}\n")
        if last.get("changed_columns"):
            text.append_text(columns_summary(last["changed_columns"])).append("\n")
    if item.pending:
        text.append(f"outbox: {len(item.pending)} run(s) waiting to be published: {', '.join(item.pending)}\n",
                    "magenta")
    return text.append_text(history(item.history))


def data_quality(manifests: Sequence[dict]) -> Text:
    """Per column of the last capture: its NULL share and (approximate) distinct values, each with a trend over the
    recent runs (scaled between their own smallest and largest); a NULL share that rose since the run before is
    yellow."""
    runs = [m for m in manifests if m.get("quality")]
    if not runs:
        return Text("data quality: no capture recorded it yet", "dim")
    last = runs[-1]
    text = Text(f"data quality per column, trends over {len(runs)} run(s) (d: history · Tab, ↑↓: scroll)\n",
                "dim")
    for column, numbers in last["quality"].items():
        shares = [_share(m, column) for m in runs]
        distinct = [int((m["quality"].get(column) or {}).get("distinct") or 0) for m in runs]
        rose = len(shares) > 1 and shares[-1] > shares[-2]
        text.append(f"{column[:NAME_WIDTH - 1]:<{NAME_WIDTH}}", "bold")
        text.append(f"NULL {shares[-1] / 10:>5.1f}% {trend(shares)}  ", "yellow" if rose else "")
        text.append(f"distinct {numbers.get('distinct') or 0:>9,} {trend(distinct)}\n")
    text.rstrip()
    return text


def _share(manifest: dict, column: str) -> int:
    """A column's NULLs in a run, per mille of its rows."""
    nulls = int((manifest["quality"].get(column) or {}).get("nulls") or 0)
    return round(1000 * nulls / manifest["rows"]) if manifest.get("rows") else 0


def trend(values: Sequence[int]) -> str:
    """A sparkline between the values' own smallest and largest (flat when they are all equal)."""
    low, high = min(values), max(values)
    if high == low:
        return BLOCKS[0] * len(values)
    return spark([v - low + 1 for v in values], high - low + 1)


def table_version(manifest: dict) -> str:
    """' · delta version 7' when the run was applied to a Delta/Iceberg table (its manifest's `table_format`)."""
    applied = manifest.get("table_format") or {}
    if not applied.get("name"):
        return ""
    what = "snapshot" if applied["name"] == "iceberg" else "version"
    return f" · {applied['name']} {what} {applied.get('version')}"


def history(manifests: Sequence[dict]) -> Text:
    """Three sparklines (I, U, D) over the recent captures with changes, each scaled to its own largest count."""
    runs = [m for m in manifests if m.get("kind") == "changes"]
    if not runs:
        return Text("history: no change sets yet (d: data quality)", "dim")
    series = {op: [int(m.get("counts", {}).get(op, 0)) for m in runs] for op in OPS}
    text = Text(f"history of the last {len(runs)} change set(s), each op to its own max (d: data quality)\n", "dim")
    for op in OPS:
        text.append(f"{op} ", OP_STYLES[op])
        text.append(f"{spark(series[op], max(series[op])):<24}", OP_STYLES[op].replace("bold ", ""))
        text.append(f" last {series[op][-1]:,} · max {max(series[op]):,}\n")
    text.rstrip()
    return text


def report_line(report: TableReport) -> Text:
    """One table of a cycle's report: status, counts, rows, or its one-line error."""
    line = Text(f"{report.table:<{NAME_WIDTH}}", "bold")
    status = STATUS.get(report.status, report.status)
    waiting = f"  (held run {report.held_waiting} waits to be accepted)" if report.held_waiting else ""
    if report.status == "failed":
        return line.append(f"FAILED: {report.error}", "red").append(waiting, "yellow")
    if report.status == "held":
        return line.append(re.sub(r'^Table "[^"]*": ', "", report.error or "held"), "yellow")  # the line names it
    line.append(f"{status:<14}", "cyan" if report.status == "full_load" else "")
    shown = counts(report.counts, width=4)
    if report.status == "changes":
        line.append_text(shown)
    elif report.rows is not None:  # no counts: the rows still line up with the other tables' rows
        line.append(" " * shown.cell_len)
    if report.rows is not None:
        line.append(f"  {report.rows:>8,} rows", "dim")
    if report.rebased:
        line.append(f"  (rebased on the lake's run {report.rebased})", "dim")
    return line.append(waiting, "yellow")


def value_text(value: Any) -> str:
    """A cell value as the detail pane shows it: `null` for a missing value, times as the grid shows them."""
    if value is None:
        return "null"
    if isinstance(value, datetime | time):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return repr(value[:32]) + (f" (+{len(value) - 32} bytes)" if len(value) > 32 else "")
    if isinstance(value, str):
        return '""' if value == "" else value
    return str(value)  # numbers as Python prints them: a DECIMAL keeps its scale (20.50)


def _value(value: Any) -> Text:
    return Text("null", "dim italic") if value is None else Text(value_text(value))


def key_text(key: Sequence[Any]) -> str:
    """A row's key for display; a composite key joined by "/" (as the notebooks take it)."""
    return "/".join(value_text(k) for k in key)


def detail_title(detail: RowDetail, columns: int) -> Text:
    """The detail pane's title: op, key and what the lines below list."""
    op = detail.op
    what = {"U": f"{len(detail.values)} of {columns} column(s) changed: old → new",
            "I": "inserted: its values", "D": "deleted: the values it had",
            None: "first capture: its values"}[op]
    if op == "U" and not detail.old_known:
        what += " (old values unknown: the previous snapshot is gone)"
    text = Text.assemble((op, OP_STYLES[op]), " ") if op else Text()
    return text.append(key_text(detail.key), "bold").append(f" · {what}")


def detail_lines(detail: RowDetail) -> Text:
    """A U row: one line per changed column, `column  old → new`. Other rows: `column value · column value …`
    (every column, wrapped: denser, so a whole inserted or deleted row fits the pane at 80 columns)."""
    if not detail.values:
        return Text("no column changed: the schema changed, or only the date field moved", "dim")
    text = Text()
    if detail.op != "U":
        for i, (column, old, new) in enumerate(detail.values):
            text.append(" · " if i else "").append(column, "bold").append(" ")
            text.append_text(_value(old if detail.op == "D" else new))
        return text
    width = min(24, max(len(column) for column, _, _ in detail.values))
    for column, old, new in detail.values:
        text.append(f"{column:<{width}}  ", "bold")
        text.append_text(_value(old) if detail.old_known else Text("?", "dim"))
        after = _value(new)
        after.stylize(CHANGED_STYLE)
        text.append(" → ").append_text(after).append("\n")
    text.rstrip()
    return text


def columns_summary(column_counts: Mapping[str, int]) -> Text:
    """Which columns the updates changed and in how many rows, most changed first."""
    text = Text("updated columns  ", "dim")
    ranked = sorted(column_counts.items(), key=lambda item: (-item[1], item[0]))
    for i, (column, rows) in enumerate(ranked):
        text.append(" · " if i else "").append(column, "bold").append(f" {rows:,}")
    return text
