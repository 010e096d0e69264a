"""Timestamps finer than the lake's microseconds (Parquet `TIMESTAMP_NS` inputs): never rounded.

The lake's timestamps hold microseconds (as Delta, Iceberg, Spark and Athena do). A nanosecond input column whose
values are all whole microseconds is read exactly. Otherwise the date field drops the finer digits — truncated,
as a CSV date field's seventh digit is, so an instant never moves into the next second, day or year — and any
other column (a key, a pinned column, a plain one) is refused in one line: exact or refused, never rounded.
"""

from __future__ import annotations

from .errors import InputError
from .sql import literal, quote


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
    ns = f"epoch_ns({quote(date_field)})"
    return {date_field: f"(make_timestamp(({ns} - ({ns} % 1000 + 1000) % 1000) // 1000) AT TIME ZONE "
                        f"{literal('UTC')})"}
