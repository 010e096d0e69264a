"""The typing law in DuckDB's SQL: text read as a lake type (`parse`), a typed value printed back as the text it
was read from (`text_of`), the check that the two agree (`exact`), a lake file projected onto a table's columns,
and a nanosecond input column truncated (the date field) or refused (any other) — see `types` for the law and
`precision` for what a lake timestamp holds.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...types import DATE, LAYOUTS, META_KEY, TEXT, TZ, layouts_metadata, read_layouts
from ..rules import file_columns
from .connection import literal, quote


def text_of(expr: str, kind: str, layout: str | None = None) -> str:
    """SQL for the text a typed value was read from (its canonical text when it came typed)."""
    if kind == TEXT:
        return expr
    if layout and kind in (TZ, DATE):
        return f"strftime({expr}, {literal(layout)})"
    return f"CAST({expr} AS VARCHAR)"


def parse(expr: str, kind: str, layout: str | None = None, hint: str | None = None) -> str:
    """SQL that reads text as `kind` (NULL where it does not parse).

    A timestamp reads as DuckDB's `TRY_CAST(… AS TIMESTAMP WITH TIME ZONE)` reads it (offsets and zone names
    honoured, else UTC). Text written exactly in an ISO layout (`layout`, or the `hint` of how the column is
    likely written) has no zone to honour: it takes a fast path that skips the time-zone library, with the same
    result.
    """
    if kind == TEXT:
        return expr
    if layout and layout not in LAYOUTS and kind in (TZ, DATE):
        return f"CAST(TRY_STRPTIME({expr}, {literal(layout)}) AS {kind})"
    form = layout or hint
    if kind == TZ and form in LAYOUTS:
        return (f"CASE WHEN {_written_in(expr, form)} THEN make_timestamptz(epoch_us({_naive(expr)})) "
                f"ELSE TRY_CAST({expr} AS {TZ}) END")
    return f"TRY_CAST({expr} AS {kind})"


def written(expr: str, kind: str, layout: str | None = None, hint: str | None = None) -> str | None:
    """SQL true where text `expr` takes `parse`'s fast path (a timestamp written exactly in an ISO layout), or
    None when `parse` has no fast path for this column. Where it is true, the value prints back to its text
    (`exact` is true): the check can skip its own printing there."""
    form = layout or hint
    if kind == TZ and form in LAYOUTS and not (layout and layout not in LAYOUTS):
        return _written_in(expr, form)
    return None


def exact(raw: str, parsed: str, kind: str, layout: str | None = None) -> str:
    """SQL that is true when `parsed` (= `parse(raw)`) prints back to exactly `raw` (`text_of(parsed) = raw`).

    A timestamp in an ISO layout is printed from its UTC wall time without the time-zone library (fast).
    """
    if kind == TZ and layout in LAYOUTS:
        return _prints_as(f"make_timestamp(epoch_us({parsed}))", layout, raw)  # its UTC wall time
    return f"{text_of(parsed, kind, layout)} = {raw}"


ZONELESS = ("DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")


def cast(expr: str, kind: str, to: str) -> str:
    """SQL for a typed value of type `kind` as type `to`. A zone-less date or timestamp becomes a UTC instant
    (`TIMESTAMP WITH TIME ZONE`) from its epoch microseconds, without the time-zone library: the same value as
    `CAST` on our connections, whose zone is UTC (an infinity, which has no epoch, is cast), where `CAST` costs
    0.15 s per column of 3M rows. (On a connection in another zone, `CAST` would read the value in that zone; this
    reads it as UTC, as the lake does every zone-less timestamp.)"""
    if to == TZ and (kind := kind.upper()) in ZONELESS:
        micros = f"epoch_us({expr if kind == 'TIMESTAMP' else f'CAST({expr} AS TIMESTAMP)'})"
        return f"CASE WHEN isfinite({expr}) THEN make_timestamptz({micros}) ELSE CAST({expr} AS {TZ}) END"
    return f"CAST({expr} AS {to})"


def _naive(expr: str) -> str:
    return f"TRY_CAST({expr} AS TIMESTAMP)"


def _written_in(expr: str, layout: str) -> str:
    """True where text `expr` is a finite timestamp written exactly in the ISO `layout` (zone-less, or `Z`)."""
    return _prints_as(_naive(expr), layout, expr)


def _prints_as(naive: str, layout: str, text: str) -> str:
    """True where the zone-less timestamp `naive` is finite and prints in `layout` as exactly `text`."""
    return f"(isfinite({naive}) AND strftime({naive}, {literal(layout)}) = {text})"


def nullable(expr: str) -> str:
    """`expr`, as a column a Parquet file declares optional. DuckDB 2 writes a column as `required` when the
    statistics of what it reads show no NULL (a Parquet input, a snapshot): then a CDC file or a replay would
    declare `not null` a column that other files of the same table hold NULLs in, and pyarrow builds tables whose
    schema lies. A CASE is something the statistics cannot see through."""
    return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {expr} END"


def kv_metadata(layouts: dict[str, str]) -> str:
    """The COPY option that records the columns' layouts in a Parquet file (empty when there are none)."""
    meta = layouts_metadata(layouts)
    return f", KV_METADATA {{{META_KEY}: {literal(meta[META_KEY.encode()].decode())}}}" if meta else ""


def project(con, path: Path, columns: dict[str, str], alias: dict[str, str], *, ops: bool = False,
            forget: frozenset[str] = frozenset()) -> str:
    """SELECT of one lake file as the target's columns (by exact name) and types; a column it lacks (or one to
    `forget`) is NULL.

    A column that was typed in the file but is text in the target becomes the text its values were read from.
    """
    have, layouts = file_columns(con, path), read_layouts(path)
    out = []
    for col, kind in columns.items():
        if col not in have or col in forget:
            out.append(f"CAST(NULL AS {kind}) AS {alias[col]}")
            continue
        name, file_type = have[col]
        if file_type == kind:
            value = quote(name)
        elif kind == "VARCHAR":
            value = text_of(quote(name), file_type, layouts.get(col))
        else:
            value = cast(quote(name), file_type, kind)
        out.append(f"{value} AS {alias[col]}")
    if not ops:
        return f"SELECT {', '.join(out)} FROM read_parquet({literal(str(path))})"
    # change rows only: `op` I/U/D (other ops, like before-images, are not part of the table)
    return (f"SELECT op, _cdc_run_id, {', '.join(out)} FROM read_parquet({literal(str(path))}) "
            "WHERE op IN ('I', 'U', 'D')")


def nanosecond_columns(con, relation: str, described: list[tuple], date_field: str | None,
                       at: str) -> dict[str, str]:
    """{the date field: SQL for its values truncated to microseconds} when it is a nanosecond column; raises
    `InputError` for any other nanosecond column with a value finer than a microsecond."""
    nanos = [name for name, kind, *_ in described if kind.replace(" ", "").upper().endswith("_NS")]
    others = [name for name in nanos if name != date_field]
    if others:
        probes = ", ".join(f"min(strftime({quote(c)}, '%Y-%m-%d %H:%M:%S.%n')) FILTER (WHERE epoch_ns({quote(c)}) "
                           "% 1000 <> 0)" for c in others)
        found = con.execute(f"SELECT {probes} FROM {relation}").fetchall()[0]
        for name, example in zip(others, found, strict=True):
            if example is not None:
                raise InputError(f'{at}: column "{name}" holds {example}, finer than the microseconds a lake '
                                 "timestamp holds, and a value is never rounded — truncate it to microseconds at "
                                 "the source, or write it there as text")
    if date_field not in nanos:
        return {}
    col, ns = quote(date_field), f"epoch_ns({quote(date_field)})"  # an infinity has no epoch: it is cast
    return {date_field: f"CASE WHEN {ns} IS NOT NULL THEN make_timestamptz(({ns} - ({ns} % 1000 + 1000) % 1000) "
                        f"// 1000) ELSE CAST({col} AS {TZ}) END"}
