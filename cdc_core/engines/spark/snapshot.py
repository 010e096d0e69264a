"""A table's file → its typed Parquet snapshot, on Spark: the same plan, checks and errors as `snapshot`.

The columns are planned exactly as `snapshot` plans them (keys text, date field a UTC timestamp, pins, the
previous snapshot's types, else a guess from each column's smallest and largest value over the whole file); the
write checks every value and stops at the first that does not fit, the failed columns widen (or a pinned one is
refused) and the write runs again — one pass over the data when nothing widens, as with DuckDB.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ...config import TableConfig
from ...errors import InputError
from ...logs import first_line
from ...names import check_names, lake_names
from ...types import BOOL, DATE, TEXT, TZ, guess, lake_type_of, read_layouts
from ...types import Column as LakeColumn
from ..duckdb import csvfile
from ..duckdb.snapshot import CHECK, EXAMPLES, Snapshot, check_pins, csv_rule
from . import types as st
from .parquet import file_rows, file_types, spark_type, write_single

NOT_UTF8 = "cdc-check not utf-8"
ERRORS = (PySparkException, Py4JJavaError)  # a job's failure, as Spark Connect and classic Spark raise it


@dataclass
class _Plan:
    """How one output column is made from the input (the twin of `snapshot._Plan`, with Spark columns)."""

    name: str
    src: Column
    type: str
    layout: str | None = None
    mode: str = "cast"
    was: str | None = None

    def parsed(self, raw: Column) -> Column:
        return st.parse(raw, self.type, self.layout)

    def ok(self, i: int) -> Column:
        raw, x = F.col(f"r{i}"), F.col(f"x{i}")
        if self.mode == "verify":
            return raw.isNull() | F.coalesce(st.exact(raw, x, self.type, self.layout), F.lit(False))
        return raw.isNull() | x.isNotNull()


def col(name: str) -> Column:
    return F.col("`" + name.replace("`", "``") + "`")


def load_snapshot(spark, src: Path, table: TableConfig, out: Path, *, compression: str,
                  previous: dict[str, LakeColumn] | None = None, check: bool = True) -> Snapshot:
    """Check and convert one table's file (CSV, gzipped CSV or Parquet) into a typed Parquet snapshot; `check`:
    look for NULL and duplicate keys now (a diff that follows finds them itself)."""
    src, out = Path(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    at = csvfile.where(src, table)
    header = None if _is_parquet(src) else csvfile.read_header(src, table)
    try:
        if header is None:
            df = spark.read.parquet(str(src))
            plans = _parquet_plans(df, src, table, previous or {})
        else:
            df = read_csv(spark, src, table, header, out.parent)
            plans = _csv_plans(df, table, header, previous or {})
        check_pins(table, [p.name for p in plans], at)
        widened = _write(spark, df, plans, out, compression, src, table, header)
    except ERRORS as exc:
        out.unlink(missing_ok=True)
        if header is None:
            raise InputError(f"{at} cannot be read as Parquet ({first_line(exc)}) — fix the file") from None
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
    return Snapshot(table=table.name, path=out, rows=rows, columns=columns,
                    layouts={p.name: p.layout for p in plans if p.layout}, widened=widened,
                    quality=profile(written, columns, rows, table.pk))


def profile(df, columns: dict[str, str], rows: int, pk: tuple[str, ...]) -> dict[str, dict]:
    """The twin of `snapshot.profile`, in one Spark job: NULLs, distinct values (HyperLogLog++, ±2 %, closer than DuckDB's; a
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
        out[name] = {"nulls": rows - count, "distinct": distinct, "min": low[:100] if low else None,
                     "max": high[:100] if high else None}
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


def _write(spark, df, plans: list[_Plan], out: Path, compression: str, src: Path, table: TableConfig,
           header: list[str] | None) -> dict[str, tuple[str, str]]:
    """Write with every check in the same pass; widen the columns a value broke and write again."""
    at = csvfile.where(src, table)
    widened: dict[str, tuple[str, str]] = {}
    utf8_checked = header is None
    for _ in range(len(plans) + 2):
        inner = _checked(df, plans)
        outer = []
        for i, plan in enumerate(plans):
            value = F.col(f"r{i}") if plan.mode == "cast" else \
                F.when(plan.ok(i), F.col(f"x{i}")).otherwise(F.raise_error(F.lit(f"{CHECK}{i}")))
            outer.append(value)
        if not utf8_checked:  # Spark reads bytes that are not UTF-8 as U+FFFD; DuckDB refuses the file
            bad = F.lit(False)
            for i in range(len(plans)):
                bad = bad | F.coalesce(F.col(f"r{i}").contains("\ufffd"), F.lit(False))
            outer[0] = F.when(bad, F.raise_error(F.lit(NOT_UTF8))).otherwise(outer[0])
        layouts = {p.name: p.layout for p in plans if p.layout}
        try:
            write_single(inner.select([v.alias(p.name) for v, p in zip(outer, plans, strict=True)]), out,
                         compression=compression, layouts=layouts)
            return widened
        except ERRORS as exc:
            text = str(exc)
            if NOT_UTF8 in text:
                _check_utf8(src, at)
                utf8_checked = True  # the file really holds U+FFFD characters
            elif CHECK in text:
                widened |= _failures(inner, plans, at)
            else:
                raise
    raise InputError(f"{at}: the column types never settled — report this as a bug")


def _checked(df, plans: list[_Plan]):
    """Each input column (`r{i}`) and, for checked plans, its parse (`x{i}`), once."""
    cols = []
    for i, plan in enumerate(plans):
        cols.append(plan.src.alias(f"r{i}"))
        if plan.mode != "cast":
            cols.append(plan.parsed(plan.src).alias(f"x{i}"))
    return df.select(cols)


def _check_utf8(src: Path, at: str) -> None:
    """Refuse a file that is not UTF-8 (slow path: Spark met a U+FFFD, which a UTF-8 file may hold too)."""
    try:
        with csvfile.open_text(src) as f:  # strict: raises on the first byte that is not UTF-8
            while f.read(1 << 20):
                pass
    except UnicodeDecodeError:
        raise csvfile.not_utf8(src, at) from None


def _failures(inner, plans: list[_Plan], at: str) -> dict[str, tuple[str, str]]:
    """After a failed check: widen every verified column some value does not fit; refuse strict ones."""
    checked = [(i, p) for i, p in enumerate(plans) if p.mode != "cast"]
    found = inner.agg(*[F.min(F.when(~p.ok(i), F.col(f"r{i}"))) for i, p in checked]).first()
    widened = {}
    for (i, plan), example in zip(checked, found, strict=True):
        if example is None:
            continue
        if plan.mode == "strict":
            bad = (inner.where(~plan.ok(i)).select(F.col(f"r{i}")).distinct().orderBy(f"r{i}")
                   .limit(EXAMPLES).collect())
            raise _refusal(plan, [r[0] for r in bad], at)
        widened[plan.name] = (plan.type, example)
        plan.type, plan.mode, plan.layout = TEXT, "cast", None
    return widened


def _refusal(plan: _Plan, bad: list[str], at: str) -> InputError:
    """The same one line as `snapshot._refused`, from the examples Spark found."""
    examples = ", ".join(repr(v) for v in bad)
    if plan.type == TZ and plan.layout is None:
        return InputError(f'{at}: date field "{plan.name}" has values that are not dates (e.g. {examples}) — use '
                          'YYYY-MM-DD[ HH:MM:SS[.fff]], or give its format in "columns" in the config')
    form = f" in the format {plan.layout!r}" if plan.layout else ""
    return InputError(f'{at}: column "{plan.name}" is pinned to {plan.type}{form} but has values that are not '
                      f'(e.g. {examples}) — fix the file or the pin in "columns" in the config')


def _csv_plans(df, table: TableConfig, header: list[str], previous: dict[str, LakeColumn]) -> list[_Plan]:
    """Key columns text; the date field a timestamp; pins as pinned; else the previous type, else inferred."""
    plans, unknown = [], []
    for name in header:
        rule = csv_rule(name, table, previous)
        plans.append(_Plan(name, col(name), *(rule or (TEXT, None, "cast", None))))
        if rule is None:
            unknown.append(plans[-1])
    if unknown:
        probes = [f(p.src) for p in unknown for f in (F.min, F.max, lambda c: F.max(F.length(c)))]
        found = df.agg(*probes).first()
        for i, plan in enumerate(unknown):
            plan.type, plan.layout = guess(*found[i * 3:(i + 1) * 3])
            if plan.type != TEXT:
                plan.mode = "verify"
    return plans


def _parquet_plans(df, src: Path, table: TableConfig, previous: dict[str, LakeColumn]) -> list[_Plan]:
    """A typed input keeps its types (mapped to the lake's); a type that differs from before becomes text."""
    at = csvfile.where(src, table)
    described = file_types(src)
    names = lake_names(list(described), table.rename, at)
    check_names(names, at)
    for needed in (*table.pk, *([table.date_field] if table.date_field else [])):
        if needed not in names:
            raise InputError(f'{at}: column "{needed}" is missing (columns: {", ".join(names)}) — fix the config or '
                             "the source")
    plans = []
    for name, (source, kind) in zip(names, described.items(), strict=True):
        lake, pin, before, value = lake_type_of(kind), table.pinned(name), previous.get(name), col(source)
        if lake == TEXT and kind != "VARCHAR":
            spark_type(kind)  # a type Spark cannot print as DuckDB does (time, lists, structs…): refused here
        typed = value if lake == kind else value.cast(spark_type(lake))
        if name in table.pk:
            plans.append(_Plan(name, st.text_of(typed, lake), TEXT))
        elif pin is not None or name == table.date_field:
            want = pin.type if pin is not None else TZ
            if lake == want or (want == TZ and lake == DATE):
                plans.append(_Plan(name, value.cast(spark_type(want)), want, pin.layout if pin else None))
            elif lake == TEXT:
                plans.append(_Plan(name, value, want, pin.layout if pin else None, mode="strict"))
            else:
                raise InputError(f'{at}: column "{name}" is {kind}, not {want} — fix the pin in "columns" or '
                                 '"date_field" in the config')
        elif before is not None and before.type != lake:
            plans.append(_Plan(name, st.text_of(typed, lake), TEXT, was=None if before.type == TEXT else before.type))
        else:
            plans.append(_Plan(name, typed, lake))
    return plans


def check_keys(df, pk: tuple[str, ...], where: str) -> None:
    """Raise `InputError` on NULL or duplicate keys (the twin of `snapshot.check_keys`, same line)."""
    null_any = F.lit(False)
    for k in pk:
        null_any = null_any | col(k).isNull()
    groups = df.groupBy(*[col(k) for k in pk]).agg(F.count(F.lit(1)).alias("__n"), F.max(null_any).alias("__null"))
    nulls, dupes = groups.agg(F.sum(F.when(F.col("__null"), F.col("__n"))),
                              F.count(F.when(F.col("__n") > 1, 1))).first()
    if nulls:
        raise InputError(f"{where}: {nulls} row(s) have an empty key ({', '.join(pk)}) — every row needs a key: "
                         'fix the file or "pk" in the config')
    if dupes:
        order = [F.col("__n").desc(), *[col(k).asc_nulls_last() for k in pk]]
        rows = groups.where(F.col("__n") > 1).orderBy(*order).limit(EXAMPLES).collect()
        examples = ", ".join("/".join(str(v) for v in r[:len(pk)]) + f" ×{r[len(pk)]}" for r in rows)
        raise InputError(f"{where}: {dupes} key value(s) appear more than once (e.g. {examples}) — "
                         'a key must identify one row: fix the file or "pk" in the config')


def project(spark, path: Path, columns: dict[str, str], *, ops: bool = False, forget: frozenset[str] = frozenset()):
    """One lake file as the target's columns (by exact name, aliased `c{i}`) and types (twin of `types.project`)."""
    have, layouts = file_types(path), read_layouts(path)
    df = spark.read.parquet(str(path))
    out = []
    for i, (name, kind) in enumerate(columns.items()):
        if name not in have or name in forget:
            value = F.lit(None).cast(spark_type(kind))
        elif have[name] == kind:
            value = col(name)
        elif kind == TEXT:
            value = st.text_of(col(name), have[name], layouts.get(name))
        else:
            value = col(name).cast(spark_type(kind))
        out.append(value.alias(f"c{i}"))
    if not ops:
        return df.select(out)
    return df.where(F.col("op").isin("I", "U", "D")).select(F.col("op"), F.col("_cdc_run_id"), *out)


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"

