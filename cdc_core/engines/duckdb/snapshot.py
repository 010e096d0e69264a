"""A table's file (CSV or Parquet) → its typed Parquet snapshot, with the checks that keep bad input out.

Key columns are text, the date field is a UTC timestamp, and every other CSV column gets the narrowest lake type
that every value of the *whole file* round-trips through (see `types`); Parquet inputs keep their types, mapped to
the lake's. Types are stable per table: given the previous snapshot's columns, a column keeps its type while the
new file fits it, and widens once to text when it does not (reported; the widening alone changes no row).
Pinned types (`"columns"` in the table config) win and must fit. A bad header, a bad date, a value that does not
fit a pinned type, and NULL or duplicate keys each raise one `InputError` that says what, where and how to fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ...config import TableConfig
from ...errors import InputError
from ...names import check_names, lake_names
from ...precision import nanosecond_columns
from ...types import (
    DATE,
    LAYOUTS,
    TEXT,
    TZ,
    Column,
    exact,
    file_columns,
    guess,
    kv_metadata,
    lake_type_of,
    layout_of,
    nullable,
    parse,
    project,
    read_layouts,
    safe_form,
    text_of,
)
from . import csvfile
from .connection import connect, literal, quote

EXAMPLES = 5
CHECK = "cdc-check column "


@dataclass(frozen=True)
class Snapshot:
    """A table's typed snapshot on disk."""

    table: str
    path: Path
    rows: int
    columns: dict[str, str]
    layouts: dict[str, str] = field(default_factory=dict)
    widened: dict[str, tuple[str, str]] = field(default_factory=dict)  # column → (type it had, a value that broke it)
    quality: dict[str, dict] = field(default_factory=dict)  # column → nulls, distinct (approximate), min, max

    @property
    def warnings(self) -> list[str]:
        return list(self.widenings().values())

    def widenings(self, lasting: bool = True) -> dict[str, str]:
        """Column → the line that says it widened (`lasting`: in a lake, where it stays text from now on)."""
        tail = "; it stays text from now on" if lasting else ""
        return {name: f'column "{name}" widened {old} → VARCHAR ({example!r} is not a {old}){tail}'
                for name, (old, example) in self.widened.items()}


def said_once(warnings: list[str], widenings: dict[str, str]) -> list[str]:
    """The widenings first, then the compare's `warnings` without the type changes they already explain."""
    return [*widenings.values(), *(w for w in warnings
                                   if not any(w.startswith(f'column "{c}" changed type') for c in widenings))]


@dataclass
class _Plan:
    """How one output column is made from the input: its SQL, its type, and the check its values must pass.

    The write reads `raw` (the input column) and `parsed` once each (an inner SELECT, as `r{i}` and `x{i}`), then
    keeps `x{i}` where the check holds and stops with a marked error where it does not.
    """

    name: str
    src: str  # the input column, as SQL
    type: str
    layout: str | None = None
    mode: str = "cast"  # cast: no check (typed input or text); verify: round-trip, else widen; strict: must parse
    was: str | None = None  # the type the previous snapshot had, when this plan keeps it
    hint: str | None = None  # the ISO layout a timestamp without a layout is likely written in (speed only)

    def inner(self, i: int) -> str:
        if self.mode == "cast":
            return f"{self.src} AS r{i}"
        return f"{self.src} AS r{i}, {parse(self.src, self.type, self.layout, self.hint)} AS x{i}"

    def ok(self, i: int) -> str:
        """True where row's value passes this column's check (only for `verify` and `strict` plans)."""
        if self.mode == "verify":
            return f"(r{i} IS NULL OR COALESCE({exact(f'r{i}', f'x{i}', self.type, self.layout)}, false))"
        form = None if self.layout and self.layout not in LAYOUTS else safe_form(self.type)
        if form is not None:  # a pin reads only the forms every engine reads alike: it never rounds a value
            return f"(r{i} IS NULL OR (x{i} IS NOT NULL AND regexp_matches(r{i}, {literal(form)})))"
        return f"(r{i} IS NULL OR x{i} IS NOT NULL)"

    def outer(self, i: int) -> str:
        if self.mode == "cast":
            return f"r{i} AS {quote(self.name)}"
        return f"CASE WHEN {self.ok(i)} THEN x{i} ELSE error('{CHECK}{i}') END AS {quote(self.name)}"


def _checked(plans: list[_Plan], relation: str) -> str:
    """The inner SELECT every check and the write read from: each input column and its parse, once."""
    return f"(SELECT {', '.join(p.inner(i) for i, p in enumerate(plans))} FROM {relation})"


def schema_of(path: Path) -> dict[str, Column]:
    """The columns (exact names, lake types, timestamp layouts) of a snapshot written by `load_snapshot`."""
    con = connect()
    try:
        found = file_columns(con, path)
    finally:
        con.close()
    layouts = read_layouts(path)
    return {name: Column(name, lake_type_of(kind), layouts.get(name)) for name, (_, kind) in found.items()}


def load_snapshot(src: Path, table: TableConfig, out_path: Path, *, con: duckdb.DuckDBPyConnection | None = None,
                  compression: str = "zstd", previous: dict[str, Column] | None = None,
                  check: bool = True) -> Snapshot:
    """Check and convert one table's file (CSV, gzipped CSV or Parquet) into a typed Parquet snapshot.

    With `check=False` NULL and duplicate keys are left to the diff that follows (it finds them in its own join).
    """
    con = con or connect()
    src, out_path = Path(src), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    at = csvfile.where(src, table)
    header = None if _is_parquet(src) else csvfile.read_header(src, table)
    try:
        plans, stats, widened = _write(con, src, table, header, out_path, compression, previous or {})
    except duckdb.Error as exc:
        out_path.unlink(missing_ok=True)
        if header is None:
            raise InputError(f"{at} cannot be read as Parquet ({str(exc).splitlines()[0]}) — fix the file") from None
        raise csvfile.explain(exc, src, table, header) from None
    written = f"read_parquet({literal(str(out_path))})"
    if check:  # a diff that follows finds NULL and duplicate keys from its own join, at no extra pass
        try:
            check_keys(con, written, table.pk, at)
        except InputError:
            out_path.unlink(missing_ok=True)
            raise
    rows = sum(r[1] for r in stats)
    unique = {table.pk[0]: rows} if len(table.pk) == 1 else {}  # a key is unique: no need to count its values
    return Snapshot(table=table.name, path=out_path, rows=rows, columns={p.name: p.type for p in plans},
                    layouts={p.name: p.layout for p in plans if p.layout}, widened=widened,
                    quality=profile(con, written, [p.name for p in plans], stats, unique))


def profile(con, relation: str, columns: list[str], stats: list[tuple],
            known: dict[str, int] | None = None) -> dict[str, dict]:
    """Data-quality numbers per column: NULLs, min and max from the statistics the write itself returned (min and
    max as text, cut at 100 characters), distinct values from one HyperLogLog scan of the columns whose count is
    not `known` (a single-column key has as many values as rows). DuckDB's sketch is approximate: often a few per
    cent off, at worst ~15 % — enough to see a column collapse or explode, not to count."""
    known = known or {}
    written: dict[str, dict[str, str]] = {}
    for row in stats:  # one row per file written; DuckDB names the columns quoted
        for name, numbers in (row[4] or {}).items():
            written.setdefault(name.strip('"').replace('""', '"'), {}).update(numbers)
    counted = [c for c in columns if c not in known]
    distinct = dict(known)
    if counted:
        found_counts = con.execute(f"SELECT {', '.join(f'approx_count_distinct({quote(c)})' for c in counted)} "
                                   f"FROM {relation}").fetchall()[0]
        distinct.update(zip(counted, found_counts, strict=True))
    found = {}
    for column, count in ((c, distinct[c]) for c in columns):
        numbers = written.get(column, {})
        found[column] = {"nulls": int(numbers.get("null_count", 0)), "distinct": count,
                         "min": numbers.get("min", "")[:100] or None, "max": numbers.get("max", "")[:100] or None}
    return found


def check_pins(table: TableConfig, names: list[str], at: str) -> None:
    """A pinned column the file does not have is a typo or a column gone upstream: say so, never ignore the pin."""
    if missing := [pin.name for pin in table.columns if pin.name not in names]:
        named = ", ".join(f'"{m}"' for m in missing)
        raise InputError(f'{at} has no column {named} that "columns" pins (columns: {", ".join(names)}) — fix the '
                         'name in "columns" in the config, or remove the pin')


def _write(con, src: Path, table: TableConfig, header: list[str] | None, out_path: Path, compression: str,
           previous: dict[str, Column]) -> tuple[list[_Plan], list[tuple], dict[str, tuple[str, str]]]:
    """Plan the columns, then COPY; a value that breaks a verified type widens that column and COPY runs again."""
    at = csvfile.where(src, table)
    if header is None:
        relation = f"read_parquet({literal(str(src))})"
        plans = _parquet_plans(con, relation, src, table, previous)
    else:
        relation = csvfile.relation(src, table, header)
        plans = _csv_plans(con, relation, table, header, previous)
    check_pins(table, [p.name for p in plans], at)
    widened: dict[str, tuple[str, str]] = {}
    for attempt in range(len(plans) + 1):
        select = ", ".join(plan.outer(i) for i, plan in enumerate(plans))
        layouts = {p.name: p.layout for p in plans if p.layout}
        # each attempt writes a file of its own: DuckDB removes a failed COPY's file when it cleans up, which may
        # be after the next attempt has written the same name
        target = out_path.with_name(f".{out_path.name}.{attempt}")
        try:
            written = con.execute(f"COPY (SELECT {select} FROM {_checked(plans, relation)}) TO "
                                  f"{literal(str(target))} (FORMAT parquet, COMPRESSION {compression}, "
                                  f"RETURN_STATS{kv_metadata(layouts)})").fetchall()
        except duckdb.InvalidInputException as exc:
            if CHECK not in str(exc):
                raise
            widened |= _failures(con, relation, plans, at)
            continue
        os.replace(target, out_path)
        for failed in range(attempt):
            out_path.with_name(f".{out_path.name}.{failed}").unlink(missing_ok=True)
        return plans, [(str(out_path), *row[1:]) for row in written], widened
    raise InputError(f"{at}: the column types never settled — report this as a bug")


def hold_back(con, previous: Path, current: Path, held: Path, key: tuple[str, ...], out: Path, *,
              compression: str = "zstd") -> None:
    """Write `current`, except that the rows whose keys are in `held` keep their `previous` values.

    In `date_field` mode a row that changed without a later date is not captured; keeping it as it was makes the
    committed snapshot (and the full load) what replaying the published change sets gives, and the change is
    captured when its date moves.
    """
    found, layouts = file_columns(con, current), read_layouts(current)
    columns = {name: kind for name, (_, kind) in found.items()}
    alias = {name: f"c{i}" for i, name in enumerate(columns)}
    match = " AND ".join(f"h.{quote(k)} = r.{alias[k]}" for k in key)
    held_rows = f"SELECT 1 FROM read_parquet({literal(str(held))}) h WHERE {match}"
    rows = (f"SELECT * FROM ({project(con, current, columns, alias)}) r WHERE NOT EXISTS ({held_rows}) UNION ALL "
            f"SELECT * FROM ({project(con, previous, columns, alias)}) r WHERE EXISTS ({held_rows})")
    named = ", ".join(f"{nullable(alias[c])} AS {quote(c)}" for c in columns)
    con.execute(f"COPY (SELECT {named} FROM ({rows})) TO {literal(str(out))} (FORMAT parquet, COMPRESSION {compression}"
                f"{kv_metadata({c: v for c, v in layouts.items() if c in columns})})")


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def csv_rule(name: str, table: TableConfig,
             previous: dict[str, Column]) -> tuple[str, str | None, str, str | None] | None:
    """How every engine types a CSV column: (type, layout, check mode, the type it had before), or None when the
    type is to be inferred from the whole file. Keys are text, a pin wins, the date field is a UTC timestamp, a
    column keeps its previous type (verified, else widened)."""
    pin, before = table.pinned(name), previous.get(name)
    if name in table.pk:
        return TEXT, None, "cast", None
    if pin is not None:
        return pin.type, pin.layout, "strict" if pin.type != TEXT else "cast", None
    if name == table.date_field:
        return TZ, None, "strict", None
    if before is not None:
        return before.type, before.layout, "cast" if before.type == TEXT else "verify", before.type
    return None


def _csv_plans(con, relation: str, table: TableConfig, header: list[str],
               previous: dict[str, Column]) -> list[_Plan]:
    """Key columns text; the date field a timestamp; pins as pinned; else the previous type, else inferred."""
    plans, unknown = [], []
    for name in header:
        rule = csv_rule(name, table, previous)
        plans.append(_Plan(name, quote(name), *(rule or (TEXT, None, "cast", None))))
        if rule is None:
            unknown.append(plans[-1])
    if unknown:
        _infer(con, relation, unknown)
    for plan in plans:  # a date field or a pinned timestamp: how its first value is written makes a fast path
        if plan.type == TZ and plan.layout is None and plan.mode == "strict":
            first = con.execute(f"SELECT {plan.src} FROM {relation} WHERE {plan.src} IS NOT NULL LIMIT 1").fetchall()
            plan.hint = layout_of(first[0][0]) if first else None
    return plans


def _infer(con, relation: str, plans: list[_Plan]) -> None:
    """Guess each plan's type from its smallest and largest value over the whole file; the write verifies."""
    probes = ", ".join(f"min({p.src}), max({p.src}), max(length({p.src}))" for p in plans)
    found = con.execute(f"SELECT {probes} FROM {relation}").fetchall()[0]
    for i, plan in enumerate(plans):
        plan.type, plan.layout = guess(*found[i * 3:(i + 1) * 3])
        if plan.type != TEXT:
            plan.mode = "verify"


def _parquet_plans(con, relation: str, src: Path, table: TableConfig, previous: dict[str, Column]) -> list[_Plan]:
    """A typed input keeps its types (mapped to the lake's); a type that differs from before becomes text."""
    at = csvfile.where(src, table)
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    sources = pq.read_schema(src).names
    names = lake_names(sources, table.rename, at)
    check_names(names, at)
    for col in (*table.pk, *([table.date_field] if table.date_field else [])):
        if col not in names:
            raise InputError(f'{at}: column "{col}" is missing (columns: {", ".join(names)}) — fix the config or '
                             "the source")
    date_source = sources[names.index(table.date_field)] if table.date_field else None
    truncated = nanosecond_columns(con, relation, described, date_source, at)
    plans = []
    for name, source, (_, kind, *_) in zip(names, sources, described, strict=True):
        col, lake, pin, before = quote(source), lake_type_of(kind), table.pinned(name), previous.get(name)
        col = truncated.get(source, col)
        typed = col if lake in (kind, kind.replace(" ", "")) else f"CAST({col} AS {lake})"
        if name in table.pk:
            plans.append(_Plan(name, text_of(typed, lake), TEXT))
        elif pin is not None or name == table.date_field:
            want = pin.type if pin is not None else TZ
            if lake == want or (want == TZ and lake == DATE):
                plans.append(_Plan(name, f"CAST({col} AS {want})", want, pin.layout if pin else None))
            elif lake == TEXT:
                plans.append(_Plan(name, col, want, pin.layout if pin else None, mode="strict"))
            else:
                raise InputError(f'{at}: column "{name}" is {kind}, not {want} — fix the pin in "columns" or '
                                 '"date_field" in the config')
        elif before is not None and before.type != lake:
            plans.append(_Plan(name, text_of(typed, lake), TEXT, was=None if before.type == TEXT else before.type))
        else:
            plans.append(_Plan(name, typed, lake))
    for plan in plans:  # a CSV's columns are optional in the snapshot: so are a Parquet file's
        plan.src = nullable(plan.src)
    return plans


def _failures(con, relation: str, plans: list[_Plan], at: str) -> dict[str, tuple[str, str]]:
    """After a failed check: widen every verified column some value does not fit; refuse strict ones."""
    checked = [(i, p) for i, p in enumerate(plans) if p.mode != "cast"]
    probes = ", ".join(f"min(r{i}) FILTER (WHERE NOT {p.ok(i)})" for i, p in checked)
    found = con.execute(f"SELECT {probes} FROM {_checked(plans, relation)}").fetchall()[0]
    widened = {}
    for (i, plan), example in zip(checked, found, strict=True):
        if example is None:
            continue
        if plan.mode == "strict":
            raise _refused(con, relation, plans, i, at)
        widened[plan.name] = (plan.type, example)
        plan.type, plan.mode, plan.layout = TEXT, "cast", None
    return widened


def _refused(con, relation: str, plans: list[_Plan], i: int, at: str) -> InputError:
    plan = plans[i]
    bad = con.execute(f"SELECT DISTINCT r{i} FROM {_checked(plans, relation)} WHERE NOT {plan.ok(i)} "
                      f"ORDER BY 1 LIMIT {EXAMPLES}").fetchall()
    examples = ", ".join(repr(r[0]) for r in bad)
    if plan.type == TZ and plan.layout is None:
        return InputError(f'{at}: date field "{plan.name}" has values that are not dates (e.g. {examples}) — use '
                          'YYYY-MM-DD[ HH:MM:SS[.fff]], or give its format in "columns" in the config')
    form = f" in the format {plan.layout!r}" if plan.layout else ""
    return InputError(f'{at}: column "{plan.name}" is pinned to {plan.type}{form} but has values that are not '
                      f'(e.g. {examples}) — fix the file or the pin in "columns" in the config')


def check_keys(con, relation: str, pk: tuple[str, ...], where: str) -> int:
    """Count the rows of `relation`; raise `InputError` on NULL or duplicate keys (with up to 5 examples)."""
    keys = ", ".join(quote(c) for c in pk)
    null_any = " OR ".join(f"{quote(c)} IS NULL" for c in pk)
    rows, nulls = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {null_any}) FROM {relation}").fetchall()[0]
    if nulls:
        raise InputError(f"{where}: {nulls} row(s) have an empty key ({', '.join(pk)}) — every row needs a key: "
                         'fix the file or "pk" in the config')
    dupes = con.execute(f"SELECT {keys}, count(*) AS n, count(*) OVER () AS total FROM {relation} "
                        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC, {keys} LIMIT {EXAMPLES}").fetchall()
    if dupes:
        examples = ", ".join("/".join(str(v) for v in r[:len(pk)]) + f" ×{r[len(pk)]}" for r in dupes)
        raise InputError(f"{where}: {dupes[0][-1]} key value(s) appear more than once (e.g. {examples}) — "
                         'a key must identify one row: fix the file or "pk" in the config')
    return rows
