"""A change set: the change rows of one diff, and what the diff noticed on the way (counts, columns, warnings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OPS = ("I", "U", "D")


@dataclass
class ChangeSet:
    """The change rows (`op` + the row's columns, ordered by key) and what the diff noticed on the way.

    With `output`, the rows were written straight to that Parquet file (never held in Python) and `rows` reads
    them back only when asked. `held_back` counts the rows that changed but are not updates (`date_field` mode):
    their keys are in `held_keys` (a Parquet file beside the output), so the caller can keep them as they were.
    """

    key: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    type_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    layouts: dict[str, str] = field(default_factory=dict)  # timestamp columns → the layout of their text
    column_counts: dict[str, int] = field(default_factory=dict)  # updated rows per changed column
    path: Path | None = None
    held_back: int = 0
    held_keys: Path | None = None
    _rows: pa.Table | None = field(default=None, repr=False)

    @property
    def rows(self) -> pa.Table:
        if self._rows is None and self.path is not None:
            self._rows = pq.read_table(self.path)
        return self._rows if self._rows is not None else pa.table({"op": pa.array([], pa.string())})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def schema_changed(self) -> bool:
        return bool(self.added_columns or self.removed_columns or self.type_changes)

    def __bool__(self) -> bool:
        return self.total > 0

    def _repr_html_(self) -> str:
        """The counts, warnings and first 20 change rows as an HTML table (Jupyter, marimo)."""
        import html

        shown = self.rows.slice(0, 20).to_pandas()
        counts = " · ".join(f"<b>{op}</b> {self.counts.get(op, 0):,}" for op in OPS)
        notes = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        more = self.rows.num_rows - len(shown)
        return (f"<div><p>Change set by {html.escape(', '.join(self.key))}: {counts}</p>"
                + (f"<ul>{notes}</ul>" if notes else "") + shown.to_html(index=False, border=0)
                + (f"<p>… and {more:,} more row(s)</p>" if more > 0 else "") + "</div>")
