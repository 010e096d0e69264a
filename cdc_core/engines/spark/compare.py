"""The comparison on Spark: one full outer join of two typed sides by key, keeping only the rows that changed.

The twin of `compare` (read it first): the same positional aliases, the same common types, the same NULL-safe
per-column flags (`eqNullSafe`), the same counts, warnings, `_cdc_changed`, `B` rows, details and held-back keys,
and the same one-line errors for NULL and duplicate keys. Written with the DataFrame API only, so it runs alike on
classic Spark and on Spark Connect.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path

import pyarrow as pa
from pyspark.sql import Column
from pyspark.sql import functions as F

from ...logs import first_line
from ...types import read_layouts
from ..changeset import (
    ChangeSet,
    DiffStats,
    Output,
    Side,
    ambiguous_keys,
    check_side,
    common_types,
    keys_in_doubt,
    not_comparable,
    opening,
    record,
    warn,
)
from ..rules import unreadable_parquet
from . import types as st
from .parquet import file_rows, file_types, spark_type, write_single
from .snapshot import ERRORS, check_keys
from .types import col


def open_side(spark, path: Path, key: tuple[str, ...], date_field: str | None) -> Side:
    """A Parquet snapshot as one side of a diff, with the checks every engine makes (`check_side`); a file Spark
    cannot read (nanosecond timestamps, a broken file) is the capture's one-line error."""
    label = str(path)
    try:
        columns = file_types(path)
        df = spark.read.parquet(str(path))
        _ = df.schema  # Spark Connect reads lazily: fail here, not halfway through the diff
    except (*ERRORS, pa.ArrowException) as exc:
        raise unreadable_parquet(label, first_line(exc)) from None
    check_side(label, columns, key, date_field)
    return Side(df, columns, file_rows(path), label, read_layouts(path))


def compare(prev: Side, cur: Side, key: tuple[str, ...], date_field: str | None, detect: str,
            output: Output, constants: dict[str, Column]) -> ChangeSet:
    """The change set of `cur` against `prev`, written to `output.path` (see `compare.compare`)."""
    try:
        return _compare(prev, cur, key, date_field, detect, output, constants)
    except ERRORS as exc:
        if "CAST" not in str(exc).upper():
            raise
        raise not_comparable(prev.label, cur.label, str(exc).strip().splitlines()[0]) from None


def _compare(prev: Side, cur: Side, key: tuple[str, ...], date_field: str | None, detect: str,
             output: Output, constants: dict[str, Column]) -> ChangeSet:
    result = ChangeSet(key=key)
    columns, types = common_types(prev, cur, key, date_field, result)
    alias = {c: f"c{i}" for i, c in enumerate(columns)}

    def side(s: Side, name: str):
        """Every column of either input, cast once to the type both sides compare on, plus a row marker."""
        out = [F.lit(True).alias("__s")]
        for c in columns:
            have = s.columns.get(c)
            if have == types[c]:
                value = col(c)
            elif have and types[c] == "VARCHAR":  # text as it was read (a widened column: no false update)
                value = st.text_of(col(c), have, s.layouts.get(c))
            else:
                value = (col(c) if have else F.lit(None)).cast(spark_type(types[c]))
            out.append(value.alias(alias[c]))
        return s.data.select(out).alias(name)

    def p(c: str) -> Column:
        return F.col(f"p.{alias[c]}")

    def n(c: str) -> Column:
        return F.col(f"c.{alias[c]}")

    compared = [c for c in columns if c not in key and c in cur.columns]
    flag = {c: f"__d{i}" for i, c in enumerate(compared)}
    in_p, in_c = F.col("p.__s"), F.col("c.__s")
    select = [F.when(in_p.isNull(), "I").when(in_c.isNull(), "D").otherwise("U").alias("op")]
    select += [(F.coalesce(n(c), p(c)) if c in key else F.when(in_c, n(c)).otherwise(p(c))).alias(alias[c])
               for c in columns]
    select += [(~p(c).eqNullSafe(n(c))).alias(flag[c]) for c in compared]
    if date_field:
        bumped, backwards = n(date_field) > p(date_field), n(date_field) < p(date_field)
    else:
        bumped = backwards = F.lit(False)
    select += [F.coalesce(bumped, F.lit(False)).alias("__bumped"),
               F.coalesce(backwards, F.lit(False)).alias("__backwards")]
    if output.before_image:
        select += [F.when(in_c & in_p, p(c)).alias(f"__p{alias[c]}") for c in columns]
    on = reduce(lambda a, b: a & b, [p(k) == n(k) for k in key])
    changed = reduce(lambda a, b: a | b, [F.col(f) for f in flag.values()], F.lit(False))
    work = (side(prev, "p").join(side(cur, "c"), on, "full_outer").select(select)
            .withColumn("__changed", changed)
            .where((F.col("op") != "U") | F.col("__changed") | F.col("__bumped") | F.col("__backwards"))
            .persist())
    try:
        is_update = F.col("__changed" if detect == "content" else "__bumped")
        op = F.col("op")
        updated = (op == "U") & is_update
        changed_only = (op == "U") & F.col("__changed") & ~F.col("__bumped") & ~F.col("__backwards")
        measures = {"inserted": op == "I", "deleted": op == "D", "updated": updated, "unbumped": changed_only,
                    "backwards": (op == "U") & F.col("__backwards"), "candidates": op == "U"}
        row = work.agg(*[F.count(F.when(m, 1)) for m in measures.values()],
                       *[F.count(F.when(updated & F.col(flag[c]), 1)) for c in compared]).first()
        stats = DiffStats.of(dict(zip(measures, row, strict=False)), row[len(measures):])
        record(result, stats, compared)
        _check_keys(work, prev, cur, key, [alias[k] for k in key], stats)

        if compared:
            names = F.array(*[F.when(F.col(flag[c]), F.lit(c)) for c in compared])
            changed_list = F.when(op == "U", F.filter(names, lambda x: x.isNotNull())).otherwise(
                F.array().cast("array<string>"))
        else:
            changed_list = F.array().cast("array<string>")
        carried = ["op", *(alias[c] for c in columns), *flag.values()]
        rows = work.where((op != "U") | is_update).select(F.lit(1).alias("__o"), *carried)
        if output.before_image:  # each U row's previous values, as a B row right before it
            before = [F.col(alias[c] if c in key else f"__p{alias[c]}").alias(alias[c]) for c in columns]
            rows = rows.union(work.where(updated).select(F.lit(0).alias("__o"), F.lit("B").alias("op"), *before,
                                                         *flag.values()))
        named = [F.col("op")] + [F.col(alias[c]).cast("timestamp").alias(c) if types[c] == "TIMESTAMP"
                                 else F.col(alias[c]).alias(c) for c in columns]
        named += [value.alias(name) for name, value in constants.items()]
        if output.changed_columns:
            named.append(changed_list.alias("_cdc_changed"))  # a B row's op is not U: its list is empty
        if output.path is not None:
            order = [f"__cdc_k{i}" for i in range(len(key))] + ["__cdc_o"]
            sort = [F.col(alias[k]).alias(order[i]) for i, k in enumerate(key)] + [F.col("__o").alias("__cdc_o")]
            result.path = write_single(rows.select(*named, *sort), output.path, compression=output.compression,
                                       layouts=result.layouts, order=order)
        keys = [F.col(alias[k]).alias(k) for k in key]
        if output.details is not None:
            write_single(work.where(updated).select(*keys, changed_list.alias("_cdc_changed")), output.details,
                         compression="snappy")
        result.held_back = stats.held_back
        if result.held_back and output.path is not None:
            result.held_keys = output.path.with_name(output.path.stem + ".held.parquet")
            write_single(work.where((op == "U") & ~is_update).select(*keys), result.held_keys,
                         compression="snappy")
    finally:
        work.unpersist()
    warn(result, date_field, detect, stats)
    return result


def _check_keys(work, prev: Side, cur: Side, key: tuple[str, ...], aliases: list[str], stats: DiffStats) -> None:
    """Raise `InputError` for NULL or duplicate keys in either input (the twin of `compare._check_keys`)."""
    null_any = reduce(lambda a, b: a | b, [F.col(a).isNull() for a in aliases])
    suspicious = (work.groupBy(*aliases).agg(F.count(F.lit(1)).alias("__n"), F.max(null_any).alias("__null"))
                  .where((F.col("__n") > 1) | F.col("__null")).limit(1).count())
    if keys_in_doubt(bool(suspicious), prev.rows, cur.rows, stats):
        for s in (prev, cur):  # slow path, only for bad input: find which input, how many, examples
            check_keys(s.data, key, opening(s.label))
        raise ambiguous_keys(prev.label, cur.label, key)
