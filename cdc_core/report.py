"""What a cycle did: one `TableReport` per table inside a `RunReport`, which every face renders its own way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Upload:
    """One file a capture writes (or, in a dry run, would write) into the lake."""

    key: str
    rows: int | None
    bytes: int


@dataclass
class TableReport:
    """What one cycle did to one table."""

    table: str
    status: str = "pending"  # full_load | changes | unchanged | skipped | failed | held
    counts: dict[str, int] = field(default_factory=lambda: {"I": 0, "U": 0, "D": 0})
    column_counts: dict[str, int] = field(default_factory=dict)  # updated rows per changed column
    rows: int | None = None
    uploads: list[Upload] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published_pending: list[str] = field(default_factory=list)
    preview: Path | None = None  # dry run: the sealed snapshot and change set that publishing the preview sends
    rebased: str | None = None  # the lake's run this capture started from, when the local state was not on it
    source_version: str | None = None  # when publishing a preview: the version the dry run fetched
    held_waiting: str | None = None  # the run of a held capture still waiting for --accept-held (status not held)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: snapshot, diff, seal, publish…
    error: str | None = None

    @property
    def keys(self) -> list[str]:
        return [u.key for u in self.uploads]


@dataclass
class RunReport:
    """What one cycle did, per table."""

    run_id: str
    source: str
    lake: str
    source_version: str | None
    started_at: datetime
    tables: list[TableReport]
    finished_at: datetime | None = None
    dry_run: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # seconds of the cycle's own stages (fetch)

    @property
    def ok(self) -> bool:
        return all(t.status not in ("failed", "held") for t in self.tables)

    def _repr_html_(self) -> str:
        """The run and one row per table (status, I/U/D counts, rows, warnings or error) as an HTML table."""
        import html

        def cells(values: list, tag: str = "td") -> str:
            align = ("left", "left", "right", "right", "right", "right", "left")
            return "<tr>" + "".join(f'<{tag} style="padding:2px 8px;text-align:{a}">{html.escape(str(v))}</{tag}>'
                                    for a, v in zip(align, values, strict=True)) + "</tr>"

        head = cells(["table", "status", "I", "U", "D", "rows", "warnings / error"], "th")
        body = "".join(cells([t.table, t.status, *(f"{t.counts.get(op, 0):,}" for op in "IUD"),
                              "" if t.rows is None else f"{t.rows:,}", t.error or "; ".join(t.warnings)])
                       for t in self.tables)
        title = (f"Run {self.run_id}{' (dry run: nothing uploaded or committed)' if self.dry_run else ''} · "
                 f"{self.source} · version {self.source_version or '?'} → {self.lake}")
        return f"<div><p>{html.escape(title)}</p><table>{head}{body}</table></div>"
