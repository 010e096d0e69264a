"""A table's file (CSV or Parquet) → its typed Parquet snapshot, on DuckDB: the rules of `engines.rules` in SQL.

The columns are planned by the rules (`rules.csv_plans`, `rules.parquet_plans`); here is only how DuckDB reads
them (`csv_relation`), guesses a type from each column's smallest and largest value, parses and checks each value
(`law.parse`, `law.exact`) and writes the file in one COPY that stops at the first value that does not fit —
then one query finds which columns failed, and `rules.settle_types` widens or refuses them and writes again.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ...config import TableConfig
from ...errors import InputError
from ...types import LAYOUTS, TZ, Column, layout_of, read_layouts, safe_form
from .. import csvfile
from ..csvlines import MAX_LINE
from ..rules import (
    EXAMPLES,
    Plan,
    Snapshot,
    check_pins,
    checked,
    csv_plans,
    duplicate_keys,
    empty_keys,
    file_columns,
    infer,
    is_parquet,
    parquet_names,
    parquet_plans,
    quality,
    settle_types,
    snapshot_of,
    unreadable_parquet,
)
from . import verbatim
from .connection import connect, literal, quote
from .law import cast, exact, kv_metadata, nanosecond_columns, nullable, parse, project, text_of, written

STOP = "error('cdc: a value does not fit its column type')"  # stops the COPY; `failures` finds which, as data


def _inner(plan: Plan[str], i: int) -> str:
    """The input column (`r{i}`) and, for a checked plan, its parse (`x{i}`) and whether that took the fast path
    of an ISO timestamp (`w{i}`, the same expression the parse holds: DuckDB computes it once): read once each."""
    if plan.mode == "cast":
        return f"{plan.src} AS r{i}"
    fast = written(plan.src, plan.type, plan.layout, plan.hint)
    return (f"{plan.src} AS r{i}, {parse(plan.src, plan.type, plan.layout, plan.hint)} AS x{i}"
            + (f", {fast} AS w{i}" if fast else ""))


def _ok(plan: Plan[str], i: int) -> str:
    """True where row's value passes this column's check (only for `verify` and `strict` plans)."""
    fast = written(f"r{i}", plan.type, plan.layout, plan.hint) is not None
    if plan.mode == "verify":
        check = f"COALESCE({exact(f'r{i}', f'x{i}', plan.type, plan.layout)}, false)"
        return f"(r{i} IS NULL OR {f'CASE WHEN w{i} THEN true ELSE {check} END' if fast else check})"
    form = None if plan.layout and plan.layout not in LAYOUTS else safe_form(plan.type)
    if form is not None:  # a pin reads only the forms every engine reads alike: it never rounds a value
        check = f"(x{i} IS NOT NULL AND regexp_matches(r{i}, {literal(form)}))"
        if fast:  # an ISO timestamp with a four-digit year is in the safe form (years beyond 9999 are not)
            check = (f"CASE WHEN w{i} AND substr(r{i}, 5, 1) = '-' AND substr(r{i}, 1, 1) BETWEEN '0' AND '9' "
                     f"THEN true ELSE {check} END")
        return f"(r{i} IS NULL OR {check})"
    return f"(r{i} IS NULL OR x{i} IS NOT NULL)"


def _outer(plan: Plan[str], i: int) -> str:
    if plan.mode == "cast":
        return f"r{i} AS {quote(plan.name)}"
    return f"CASE WHEN {_ok(plan, i)} THEN x{i} ELSE {STOP} END AS {quote(plan.name)}"


def _checked(plans: list[Plan[str]], relation: str) -> str:
    """The inner SELECT every check and the write read from: each input column and its parse, once."""
    return f"(SELECT {', '.join(_inner(p, i) for i, p in enumerate(plans))} FROM {relation})"


def load_snapshot(src: Path, table: TableConfig, out_path: Path, *, con: duckdb.DuckDBPyConnection | None = None,
                  compression: str = "zstd", previous: dict[str, Column] | None = None,
                  check: bool = True, measure: bool = True) -> Snapshot:
    """Check and convert one table's file (CSV, gzipped CSV or Parquet) into a typed Parquet snapshot.

    With `check=False` NULL and duplicate keys are left to the diff that follows (it finds them in its own join);
    with `measure=False` no data-quality numbers are taken (a temporary snapshot nobody reports on).
    """
    con = con or connect()
    src, out_path = Path(src), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    at = csvfile.where(src, table)
    header = None if is_parquet(src) else csvfile.read_header(src, table)
    try:
        as_is = False
        if header is None:
            relation = f"read_parquet({literal(str(src))})"
            plans, as_is = _parquet_plans(con, relation, src, table, previous or {}, at, compression)
        else:
            relation = csv_relation(src, table, header)
            plans, _ = csv_plans_of(con, relation, table, header, previous or {})
        check_pins(table, [p.name for p in plans], at)
        widened = {}
        if as_is:  # already the snapshot it would become: copied, not re-encoded
            stats = verbatim.copy(con, src, out_path, {p.name: p.type for p in plans})
        else:
            stats, widened = write_plans(con, relation, plans, at, out_path, compression)
    except duckdb.Error as exc:
        out_path.unlink(missing_ok=True)
        if header is None:
            raise unreadable_parquet(at, str(exc).splitlines()[0]) from None
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
    found = profile(con, written, [p.name for p in plans], stats, unique) if measure else {}
    return snapshot_of(table, out_path, rows, plans, widened, found)


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
        found[column] = quality(int(numbers.get("null_count", 0)), count, numbers.get("min"), numbers.get("max"))
    return found


def write_plans(con, relation: str, plans: list[Plan[str]], at: str, out: Path,
                compression: str) -> tuple[list[tuple], dict[str, tuple[str, str]]]:
    """(The statistics of the file written, the widened columns): `relation`'s planned columns, every value checked,
    written to `out` (`rules.settle_types`)."""
    return settle_types(plans, at, _Writer(con, relation, out, compression))


class _Writer:
    """The COPY of a snapshot, and after a failed check the query that finds which columns failed (`rules.Typing`)."""

    errors = (duckdb.InvalidInputException,)

    def __init__(self, con, relation: str, out_path: Path, compression: str):
        self.con, self.relation, self.out_path, self.compression = con, relation, out_path, compression

    def write(self, plans: list[Plan[str]], attempt: int) -> list[tuple]:
        """COPY with every check; the statistics of the file written (one row per file)."""
        select = ", ".join(_outer(plan, i) for i, plan in enumerate(plans))
        layouts = {p.name: p.layout for p in plans if p.layout}
        # each attempt writes a file of its own: DuckDB removes a failed COPY's file when it cleans up, which may
        # be after the next attempt has written the same name
        out_path = self.out_path
        target = out_path.with_name(f".{out_path.name}.{attempt}")
        written = self.con.execute(f"COPY (SELECT {select} FROM {_checked(plans, self.relation)}) TO "
                                   f"{literal(str(target))} (FORMAT parquet, COMPRESSION {self.compression}, "
                                   f"RETURN_STATS{kv_metadata(layouts)})").fetchall()
        os.replace(target, out_path)
        for failed in range(attempt):
            out_path.with_name(f".{out_path.name}.{failed}").unlink(missing_ok=True)
        return [(str(out_path), *row[1:]) for row in written]

    def failures(self, plans: list[Plan[str]]) -> list | None:
        """For each checked plan, the smallest value that fails its check (None when all pass)."""
        probes = [f"min(r{i}) FILTER (WHERE NOT {_ok(p, i)})" for i, p in checked(plans)]
        if not probes:
            return None
        found = self.con.execute(f"SELECT {', '.join(probes)} FROM {_checked(plans, self.relation)}").fetchall()[0]
        return list(found) if any(v is not None for v in found) else None

    def examples(self, plans: list[Plan[str]], i: int) -> list:
        bad = self.con.execute(f"SELECT DISTINCT r{i} FROM {_checked(plans, self.relation)} WHERE NOT "
                               f"{_ok(plans[i], i)} ORDER BY 1 LIMIT {EXAMPLES}").fetchall()
        return [r[0] for r in bad]


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


def csv_relation(path: Path, table: TableConfig, header: list[str]) -> str:
    """SQL reading the file with the table's dialect, every column as text under its exact name."""
    columns = "{" + ", ".join(f"{literal(name)}: 'VARCHAR'" for name in header) + "}"
    return (f"read_csv({literal(str(path))}, delim={literal(table.sep)}, quote={literal(table.quote)}, "
            f"escape={literal(table.escape or table.quote)}, header=true, auto_detect=false, columns={columns}, "
            f"strict_mode=true, null_padding=false, max_line_size={MAX_LINE}, encoding='utf-8', "
            f"compression={literal('gzip' if csvfile.is_gzip(path) else 'none')})")


def csv_plans_of(con, relation: str, table: TableConfig, header: list[str], previous: dict[str, Column], *,
                 count: bool = False) -> tuple[list[Plan[str]], int | None]:
    """(The rules' plans, the file's rows when asked to `count` them): an inferred type from one scan of every
    such column's ends, in which the rows are counted too; a timestamp's hint."""
    plans, unknown = csv_plans(header, table, previous, quote)
    rows = None
    if unknown or count:
        probes = ["count(*)", *(f"min({p.src}), max({p.src}), max(length({p.src}))" for p in unknown)]
        found = con.execute(f"SELECT {', '.join(probes)} FROM {relation}").fetchall()[0]
        rows = found[0]
        infer(unknown, found[1:])
    for plan in plans:  # a date field or a pinned timestamp: how its first value is written makes a fast path
        if plan.type == TZ and plan.layout is None and plan.mode == "strict":
            first = con.execute(f"SELECT {plan.src} FROM {relation} WHERE {plan.src} IS NOT NULL LIMIT 1").fetchall()
            plan.hint = layout_of(first[0][0]) if first else None
    return plans, rows


class _Typed:
    """A Parquet input's columns as SQL (`rules.Expressions`); a nanosecond date field truncated."""

    def __init__(self, truncated: dict[str, str]):
        self.truncated = truncated

    def raw(self, source: str) -> str:
        return self.truncated.get(source, quote(source))

    def typed(self, source: str, kind: str, lake: str) -> str:
        if source in self.truncated and lake == TZ:  # already the instant
            return self.truncated[source]
        col = self.raw(source)
        return col if lake in (kind, kind.replace(" ", "")) else cast(col, kind, lake)

    def text_of(self, value: str, kind: str) -> str:
        return text_of(value, kind)


def _parquet_plans(con, relation: str, src: Path, table: TableConfig, previous: dict[str, Column],
                   at: str, codec: str) -> tuple[list[Plan[str]], bool]:
    """(the plans, whether the file already is the snapshot they would write: `verbatim`)."""
    found = file_columns(con, src)  # exact name → (DuckDB's name, type)
    sources, described = list(found), list(found.values())
    kinds = [kind for _, kind in described]
    names = parquet_names(sources, table, at)
    date_source = sources[names.index(table.date_field)] if table.date_field else None
    truncated = nanosecond_columns(con, relation, described, date_source, at)
    plans = parquet_plans(names, sources, kinds, table, previous, at, _Typed(truncated))
    for plan in plans:  # a CSV's columns are optional in the snapshot: so are a Parquet file's
        plan.src = nullable(plan.src)
    return plans, not truncated and verbatim.in_lake_types(src, names, kinds, table, previous, codec)


def check_keys(con, relation: str, pk: tuple[str, ...], where: str) -> int:
    """Count the rows of `relation`; raise `InputError` on NULL or duplicate keys (with up to 5 examples)."""
    keys = ", ".join(quote(c) for c in pk)
    null_any = " OR ".join(f"{quote(c)} IS NULL" for c in pk)
    rows, nulls = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {null_any}) FROM {relation}").fetchall()[0]
    if nulls:
        raise empty_keys(where, pk, nulls)
    dupes = con.execute(f"SELECT {keys}, count(*) AS n, count(*) OVER () AS total FROM {relation} "
                        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC, {keys} LIMIT {EXAMPLES}").fetchall()
    if dupes:
        raise duplicate_keys(where, pk, dupes[0][-1], dupes)
    return rows
