"""What the lake's dates and timestamps hold: microseconds up to the year 294,247 — never rounded, never wrapped.

The lake's timestamps hold microseconds (as Delta, Iceberg, Spark and Athena do). A nanosecond input column whose
values are all whole microseconds is read exactly. Otherwise the date field drops the finer digits — truncated,
as a CSV date field's seventh digit is, so an instant never moves into the next second, day or year — and any
other column (a key, a pinned column, a plain one) is refused in one line: exact or refused, never rounded.
PostgreSQL's `infinity`, `-infinity` and timestamps past the year 294,247 are found in what its driver delivers
(`out_of_range`), and its source refuses them.
"""

from __future__ import annotations

# PostgreSQL's ±infinity are the extreme int64 (int32 for dates) of its own epoch, 2000-01-01; shifted to 1970 by
# its driver they wrap below the earliest value PostgreSQL has (4714 BC), as do timestamps past the year 294,247
PG_EPOCH_US, PG_EPOCH_DAYS = 946_684_800_000_000, 10_957
INFINITY = {("us", -(1 << 63) + PG_EPOCH_US - 1): "infinity", ("us", -(1 << 63) + PG_EPOCH_US): "-infinity",
            ("day", -(1 << 31) + PG_EPOCH_DAYS - 1): "infinity", ("day", -(1 << 31) + PG_EPOCH_DAYS): "-infinity"}
EARLIEST = {"us": -210_866_803_200_000_000, "day": -2_440_588}  # 4714-11-24 BC, PostgreSQL's first day


def out_of_range(column) -> str | None:
    """What a PostgreSQL date or timestamp column (Arrow, as its driver delivers it) holds that the lake cannot —
    `'infinity'`, `'-infinity'` or a year past 294,247, which the driver wrapped — or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type) and column.type.unit == "us":
        unit, raw = "us", column.view(pa.int64())
    elif pa.types.is_date32(column.type):
        unit, raw = "day", column.view(pa.int32())
    else:
        return None
    low = pc.min(raw).as_py()
    if low is None or low >= EARLIEST[unit]:
        return None
    what = INFINITY.get((unit, low)) or next((v for (u, n), v in INFINITY.items() if u == unit and
                                              pc.any(pc.equal(raw, n)).as_py()), None)
    return f"'{what}'" if what else "a year past 294,247"
