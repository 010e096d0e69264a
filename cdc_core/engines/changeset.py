"""A change set: the change rows of one diff, and the rules every engine's diff follows to make them.

The change-row shape: `op` (`I` a key only in current, with the current row; `D` a key only in previous, with the
full previous row; `U` a key in both whose row is an update; `B`, asked for, the previous values right before
their `U`), then every column of either input (current ones first, removed ones after), ordered by key. Keys
compare as text, the date field as an instant, other columns on a common type (`common_types`); what the diff
noticed on the way (counts, columns added or removed, type changes, rows held back) is said the same way by
every engine (`record`, `warn`), and so are its one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from ..errors import InputError
from ..types import TZ

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")

OPS = ("I", "U", "D")
NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "UHUGEINT", "FLOAT", "DOUBLE"}
TEMPORAL = {"DATE", "TIMESTAMP", TZ, "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}


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
        import pyarrow as pa  # only when the rows are asked for
        import pyarrow.parquet as pq

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


@dataclass
class Side(Generic[T]):
    """One input of a comparison as an engine holds it (`data`: a DuckDB relation's name, a Spark DataFrame), with
    its exact column names, their types, its row count, its label in messages and its timestamp layouts."""

    data: T
    columns: dict[str, str]
    rows: int
    label: str
    layouts: dict[str, str] = field(default_factory=dict)
    whole: T | None = None  # the whole input when `data` holds only some of its rows (searched for bad keys)


@dataclass
class Output:
    """Where the change rows go: a Parquet file (with constant columns appended), or back to Python.

    `changed_columns` adds `_cdc_changed` (the names of a U row's changed columns; empty on I and D rows);
    `before_image` adds a `B` row with the previous values right before each `U`; `details` is a side file with
    each U row's key and `_cdc_changed`, whatever the lake's options (for previews)."""

    path: Path | None
    constants: dict[str, str] = field(default_factory=dict)
    compression: str = "snappy"
    changed_columns: bool = False
    before_image: bool = False
    details: Path | None = None


class DiffStats(NamedTuple):
    """What one pass over a diff's candidate rows counts (each engine names its measures by these fields)."""

    inserted: int
    deleted: int
    updated: int  # U rows that are updates: content changed (`detect="content"`) or a later date (`date_field`)
    unbumped: int  # changed without a later or earlier date
    backwards: int  # an earlier date than before
    candidates: int  # keys in both inputs whose row changed or whose date moved
    columns: tuple[int, ...] = ()  # per compared column, the updated rows where it changed

    @classmethod
    def of(cls, measures: dict[str, int], columns=()) -> DiffStats:
        return cls(**measures, columns=tuple(columns))

    @property
    def held_back(self) -> int:
        """Rows that changed but are not updates (date_field mode only): kept as they were."""
        return self.candidates - self.updated


def missing_input(side: str, path: Path) -> InputError:
    return InputError(f"The {side} snapshot {path} does not exist — check the path")


def check_side(label: str, columns: dict[str, str], key: tuple[str, ...], date_field: str | None) -> None:
    """Refuse an input of a diff whose names differ only in case, that lacks the key or the date field, or whose
    date field is not a date."""
    lower: dict[str, str] = {}
    for name in columns:
        if lower.setdefault(name.lower(), name) != name:
            raise InputError(f'{opening(label)} has columns "{lower[name.lower()]}" and "{name}" that '
                             "differ only in case — rename one of them")
    for col in key:
        if col not in columns:
            raise InputError(f'{opening(label)} has no key column "{col}" (columns: '
                             f'{", ".join(columns)}) — fix the key')
    if date_field and date_field not in columns:
        raise InputError(f'{opening(label)} has no date field "{date_field}" — fix the date field')
    if date_field and columns[date_field] not in TEMPORAL | {"VARCHAR", "NULL"}:
        raise InputError(f'Date field "{date_field}" of {label} is {columns[date_field]}, not a date — name a date '
                         "or timestamp column as the date field")


def common_types(prev, cur, key: tuple[str, ...], date_field: str | None,
                 result: ChangeSet) -> tuple[list[str], dict[str, str]]:
    """The columns of either input (current ones first) and the type each compares on, for every engine: keys as
    text, the date field as an instant, others on a common type. Records in `result` the added and removed columns,
    the type changes and the timestamp layouts. `prev` and `cur` need `columns` (name → type) and `layouts`."""
    p_cols, c_cols = prev.columns, cur.columns
    result.added_columns = [c for c in c_cols if c not in p_cols]
    result.removed_columns = [c for c in p_cols if c not in c_cols]
    columns = list(c_cols) + result.removed_columns
    types = {}
    for col in columns:
        p_type, c_type = p_cols.get(col), c_cols.get(col)
        if col in key:
            types[col] = "VARCHAR"
        elif col == date_field:
            types[col] = p_type if p_type == c_type and p_type in TEMPORAL else TZ
        else:
            types[col] = _common_type(p_type or c_type, c_type or p_type)
            if p_type and c_type and p_type != c_type and "NULL" not in (p_type, c_type):
                result.type_changes[col] = (p_type, c_type)
        layout = cur.layouts.get(col) if col in c_cols else prev.layouts.get(col)
        if layout and types[col] in TEMPORAL:
            result.layouts[col] = layout
    return columns, types


def _common_type(a: str, b: str) -> str:
    if a == b or b == "NULL":
        return a
    if a == "NULL":
        return b
    if a in NUMERIC and b in NUMERIC:
        return "DOUBLE"
    if a in TEMPORAL and b in TEMPORAL:
        return TZ
    return "VARCHAR"


def record(result: ChangeSet, stats: DiffStats, compared: list[str]) -> None:
    """The counts a diff's stats give its change set."""
    result.counts = {"I": stats.inserted, "U": stats.updated, "D": stats.deleted}
    result.column_counts = {c: n for c, n in zip(compared, stats.columns, strict=True) if n}


def keys_in_doubt(suspicious: bool, prev_rows: int, cur_rows: int, stats: DiffStats) -> bool:
    """Whether a diff's inputs may hold NULL or duplicate keys: a repeated or empty key among the change rows
    (`suspicious`), or matched duplicates, which break `rows(previous) - D = rows(current) - I`."""
    return suspicious or prev_rows - stats.deleted != cur_rows - stats.inserted


def ambiguous_keys(prev_label: str, cur_label: str, key: tuple[str, ...]) -> InputError:
    return InputError(f"{prev_label} or {cur_label} has duplicate keys ({', '.join(key)}) — a key must "
                      "identify one row")


def not_comparable(prev_label: str, cur_label: str, reason: str) -> InputError:
    return InputError(f"{prev_label} and {cur_label} cannot be compared ({reason}) — check the date field and "
                      "the column types")


def warn(result: ChangeSet, date_field: str | None, detect: str, stats: DiffStats) -> None:
    """The diff's warnings, in the order every engine says them."""
    if date_field and stats.unbumped:
        verb = ("not captured: kept as they were until their date moves" if detect == "date_field"
                else "captured as updates")
        result.warnings.append(f'{stats.unbumped} row(s) changed without a later "{date_field}" ({verb})')
    if date_field and stats.backwards:
        result.warnings.append(f'{stats.backwards} row(s) have an earlier "{date_field}" than before')
    if result.added_columns:
        result.warnings.append(f"column(s) added: {', '.join(result.added_columns)}")
    if result.removed_columns:
        result.warnings.append(f"column(s) removed: {', '.join(result.removed_columns)}")
    for col, (old, new) in result.type_changes.items():
        result.warnings.append(f'column "{col}" changed type {old} → {new}')


def opening(label: str) -> str:
    """An input's label at the start of a sentence: "previous" → "Previous", but a file name keeps its letters
    (`dupkey.csv` stays `dupkey.csv`: file names are case-sensitive)."""
    first = label.split(" ", 1)[0]
    return label if any(c in first for c in "./\\") else label[:1].upper() + label[1:]
