"""A table's file → its typed Parquet snapshot, on Spark: the rules of `engines.rules` as DataFrame expressions.

The columns are planned by the rules, as for DuckDB (keys text, date field a UTC timestamp, pins, the previous
snapshot's types, else a guess from each column's smallest and largest value over the whole file); the write
checks every value and stops at the first that does not fit, one aggregate finds which columns failed, and
`rules.settle_types` widens them (or refuses a pinned one) and writes again — one pass over the data when nothing
widens, as with DuckDB.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ...config import TableConfig
from ...errors import InputError
from ...logs import first_line
from ...types import BOOL, TEXT, TZ
from ...types import Column as LakeColumn
from .. import csvfile
from ..rules import (
    EXAMPLES,
    Plan,
    Snapshot,
    check_pins,
    checked,
    csv_plans,
    duplicate_keys,
    empty_keys,
    infer,
    is_parquet,
    parquet_names,
    parquet_plans,
    quality,
    settle_types,
    snapshot_of,
    unreadable_parquet,
)
from . import types as st
from .parquet import file_rows, file_types, spark_type, write_single
from .types import col

ERRORS = (PySparkException, Py4JJavaError)  # a job's failure, as Spark Connect and classic Spark raise it
STOP = "cdc: a value does not fit its column type"  # stops the write; `failures` finds which, as data


def _ok(plan: Plan[Column], i: int) -> Column:
    """True where a row's value passes this column's check (only for `verify` and `strict` plans)."""
    raw, x = F.col(f"r{i}"), F.col(f"x{i}")
    if plan.mode == "verify":
        return raw.isNull() | F.coalesce(st.exact(raw, x, plan.type, plan.layout), F.lit(False))
    return raw.isNull() | x.isNotNull()


def load_snapshot(spark, src: Path, table: TableConfig, out: Path, *, compression: str,
                  previous: dict[str, LakeColumn] | None = None, check: bool = True) -> Snapshot:
    """Check and convert one table's file (CSV, gzipped CSV or Parquet) into a typed Parquet snapshot; `check`:
    look for NULL and duplicate keys now (a diff that follows finds them itself)."""
    src, out = Path(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    at = csvfile.where(src, table)
    header = None if is_parquet(src) else csvfile.read_header(src, table)
    try:
        if header is None:
            df = spark.read.parquet(str(src))
            plans = _parquet_plans(src, table, previous or {}, at)
        else:
            df = read_csv(spark, src, table, header, out.parent)
            plans, unknown = csv_plans(header, table, previous or {}, col)
            if unknown:
                infer(unknown, df.agg(*[f(p.src) for p in unknown
                                        for f in (F.min, F.max, lambda c: F.max(F.length(c)))]).first())
        check_pins(table, [p.name for p in plans], at)
        _, widened = settle_types(plans, at, _Writer(df, out, compression, src, at, utf8_checked=header is None))
    except ERRORS as exc:
        out.unlink(missing_ok=True)
        if header is None:
            raise unreadable_parquet(at, first_line(exc)) from None
        raise csvfile.explain(exc, src, table, header) from None
    finally:
        shutil.rmtree(out.parent / ".cdc-gzip", ignore_errors=True)
    written = spark.read.parquet(str(out))
    if check:
        try:
            check_keys(written, table.pk, at)
        except InputError:
            out.unlink(missing_ok=True)
            raise
    columns = {p.name: p.type for p in plans}
    rows = file_rows(out)
    return snapshot_of(table, out, rows, plans, widened, profile(written, columns, rows, table.pk))


def profile(df, columns: dict[str, str], rows: int, pk: tuple[str, ...]) -> dict[str, dict]:
    """The twin of DuckDB's `profile`, in one Spark job: NULLs, distinct values (HyperLogLog++, ±2 %, closer than DuckDB's; a
    single-column key has as many as rows), min and max as DuckDB writes them as text (cut at 100 characters)."""
    measures = []
    for name, kind in columns.items():
        c = col(name)
        measures += [F.count(c), F.lit(rows) if pk == (name,) else F.approx_count_distinct(c, 0.02),
                     _text(F.min(c), kind), _text(F.max(c), kind)]
    found = df.agg(*measures).first() if columns else []
    out = {}
    for i, name in enumerate(columns):
        count, distinct, low, high = found[4 * i:4 * i + 4]
        out[name] = quality(rows - count, distinct, low, high)
    return out


def _text(value: Column, kind: str) -> Column:
    """A min or max as DuckDB's write statistics spell it: booleans 0/1, timestamps without trailing zeros and
    '+00' when zoned."""
    if kind == BOOL:
        return value.cast("int").cast("string")
    if kind not in (TZ, "TIMESTAMP"):
        return value.cast("string")
    text = F.regexp_replace(F.date_format(value, "yyyy-MM-dd HH:mm:ss.SSSSSS"), r"\.?0+$", "")
    return F.concat(text, F.lit("+00")) if kind == TZ else text


def read_csv(spark, src: Path, table: TableConfig, header: list[str], scratch: Path):
    """The file with the table's dialect, every column as text under its exact name (see `csvfile.relation`)."""
    path = src
    if csvfile.is_gzip(src) and not src.name.endswith(".gz"):  # Spark knows compression by the name only
        link = scratch / ".cdc-gzip"  # Hadoop skips files whose names start with "." or "_", not folders
        shutil.rmtree(link, ignore_errors=True)
        link.mkdir(parents=True)
        path = link / f"{src.name}.gz"
        path.symlink_to(src.resolve())
    schema = T.StructType([T.StructField(name, T.StringType()) for name in header])
    reader = (spark.read.schema(schema).option("header", True).option("enforceSchema", True)
              .option("sep", table.sep).option("mode", "FAILFAST").option("encoding", "UTF-8")
              .option("nullValue", "").option("multiLine", _multiline(spark, path, table))
              .option("lineSep", _line_end(src)))
    if table.quote:
        reader = reader.option("quote", table.quote).option("escape", table.escape or table.quote)
    else:
        reader = reader.option("quote", "\u0000")
    return reader.csv(str(path))


def _line_end(src: Path) -> str:
    """The file's line ending, from its first line: named, Spark keeps a quoted `\r\n` as it is (it would make
    it `\n` when it guesses)."""
    with csvfile.open_text(src, errors="replace") as f:
        return "\r\n" if f.readline().endswith("\r\n") else "\n"


def _multiline(spark, path: Path, table: TableConfig) -> bool:
    """Whether a quoted field may span lines. Reading line by line splits the file across tasks; it is safe when
    every line holds an even number of quote characters (RFC 4180: `""` escapes), checked in one parallel pass."""
    if not table.quote:
        return False
    if table.escape and table.escape != table.quote:
        return True
    count = F.length("value") - F.length(F.regexp_replace("value", re.escape(table.quote), ""))
    odd = spark.read.text(str(path)).agg(F.max(count % 2)).first()[0]
    return bool(odd)


class _Writer:
    """The write of a snapshot, and after a failed check the aggregate that finds which columns failed
    (`rules.Typing`). Spark reads bytes that are not UTF-8 as U+FFFD where DuckDB refuses the file: until the file
    is known to be UTF-8 (it may hold U+FFFD itself), a value with U+FFFD stops the write too."""

    errors = ERRORS

    def __init__(self, df, out: Path, compression: str, src: Path, at: str, *, utf8_checked: bool):
        self.df, self.out, self.compression, self.src, self.at = df, out, compression, src, at
        self.utf8_checked = utf8_checked

    def write(self, plans: list[Plan[Column]], attempt: int) -> Path:
        outer = [F.col(f"r{i}") if plan.mode == "cast" else
                 F.when(_ok(plan, i), F.col(f"x{i}")).otherwise(F.raise_error(F.lit(STOP)))
                 for i, plan in enumerate(plans)]
        if not self.utf8_checked:
            outer[0] = F.when(self._replaced(plans), F.raise_error(F.lit(STOP))).otherwise(outer[0])
        layouts = {p.name: p.layout for p in plans if p.layout}
        return write_single(_checked(self.df, plans).select([v.alias(p.name) for v, p in zip(outer, plans,
                                                                                            strict=True)]),
                            self.out, compression=self.compression, layouts=layouts)

    def failures(self, plans: list[Plan[Column]]) -> list | None:
        """For each checked plan, the smallest value that fails its check; after a U+FFFD, the file's check."""
        probes = [F.min(F.when(~_ok(p, i), F.col(f"r{i}"))) for i, p in checked(plans)]
        if not self.utf8_checked:
            probes.append(F.max(self._replaced(plans)))
        if not probes:
            return None
        found = list(_checked(self.df, plans).agg(*probes).first())
        if not self.utf8_checked and found.pop():
            _check_utf8(self.src, self.at)
            self.utf8_checked = True  # the file really holds U+FFFD characters: write again without that check
            return found
        return found if any(v is not None for v in found) else None

    def examples(self, plans: list[Plan[Column]], i: int) -> list:
        bad = (_checked(self.df, plans).where(~_ok(plans[i], i)).select(F.col(f"r{i}")).distinct()
               .orderBy(f"r{i}").limit(EXAMPLES).collect())
        return [r[0] for r in bad]

    @staticmethod
    def _replaced(plans: list[Plan[Column]]) -> Column:
        """True where some value of the row holds U+FFFD."""
        bad = F.lit(False)
        for i in range(len(plans)):
            bad = bad | F.coalesce(F.col(f"r{i}").contains("\ufffd"), F.lit(False))
        return bad


def _checked(df, plans: list[Plan[Column]]):
    """Each input column (`r{i}`) and, for checked plans, its parse (`x{i}`), once."""
    cols = []
    for i, plan in enumerate(plans):
        cols.append(plan.src.alias(f"r{i}"))
        if plan.mode != "cast":
            cols.append(st.parse(plan.src, plan.type, plan.layout).alias(f"x{i}"))
    return df.select(cols)


def _check_utf8(src: Path, at: str) -> None:
    """Refuse a file that is not UTF-8 (slow path: Spark met a U+FFFD, which a UTF-8 file may hold too)."""
    try:
        with csvfile.open_text(src) as f:  # strict: raises on the first byte that is not UTF-8
            while f.read(1 << 20):
                pass
    except UnicodeDecodeError:
        raise csvfile.not_utf8(src, at) from None


class _Typed:
    """A Parquet input's columns as Spark columns (`rules.Expressions`)."""

    def raw(self, source: str) -> Column:
        return col(source)

    def typed(self, source: str, kind: str, lake: str) -> Column:
        if lake == TEXT and kind != "VARCHAR":
            spark_type(kind)  # a type Spark cannot print as DuckDB does (time, lists, structs…): refused here
        return col(source) if lake == kind else col(source).cast(spark_type(lake))

    def text_of(self, value: Column, kind: str) -> Column:
        return st.text_of(value, kind)


def _parquet_plans(src: Path, table: TableConfig, previous: dict[str, LakeColumn], at: str) -> list[Plan[Column]]:
    described = file_types(src)
    names = parquet_names(list(described), table, at)
    return parquet_plans(names, list(described), list(described.values()), table, previous, at, _Typed())


def check_keys(df, pk: tuple[str, ...], where: str) -> None:
    """Raise `InputError` on NULL or duplicate keys (the twin of DuckDB's `check_keys`, the rules' lines)."""
    null_any = F.lit(False)
    for k in pk:
        null_any = null_any | col(k).isNull()
    groups = df.groupBy(*[col(k) for k in pk]).agg(F.count(F.lit(1)).alias("__n"), F.max(null_any).alias("__null"))
    nulls, dupes = groups.agg(F.sum(F.when(F.col("__null"), F.col("__n"))),
                              F.count(F.when(F.col("__n") > 1, 1))).first()
    if nulls:
        raise empty_keys(where, pk, nulls)
    if dupes:
        order = [F.col("__n").desc(), *[col(k).asc_nulls_last() for k in pk]]
        rows = groups.where(F.col("__n") > 1).orderBy(*order).limit(EXAMPLES).collect()
        raise duplicate_keys(where, pk, dupes, rows)
