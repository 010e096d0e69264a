"""The comparison itself: one FULL OUTER JOIN of two typed sides by key, keeping only the rows that changed.

Inside the SQL every column goes by a positional alias (exact names may differ only in case across the sides),
each side is cast once to the type both compare on, and each compared column gets a flag `__d{i}` (its value
changed, NULL-safe) in the same pass: the flags make the row an update, give the per-column counts, and, when
asked, the `_cdc_changed` list of each U row. With before-images the previous values of U rows are kept too and
written as `B` rows right before their `U` (Delta's update_preimage / update_postimage).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ...types import TZ, layouts_metadata
from ..changeset import (
    ChangeSet,
    DiffStats,
    Output,
    Side,
    ambiguous_keys,
    common_types,
    keys_in_doubt,
    opening,
    record,
    warn,
)
from .connection import literal, quote
from .law import cast, kv_metadata, nullable, text_of
from .snapshot import check_keys

_names = itertools.count()


def compare(con, prev: Side[str], cur: Side[str], key: tuple[str, ...], date_field: str | None, detect: str,
            output: Output) -> ChangeSet:
    """The change set of `cur` against `prev` (see the module's docstring)."""
    result = ChangeSet(key=key)
    columns, types = common_types(prev, cur, key, date_field, result)
    alias = {col: f"c{i}" for i, col in enumerate(columns)}  # exact names may differ only in case across sides

    def side(s: Side) -> str:
        """Every column of either input, cast once to the type both sides compare on, plus a row marker."""
        out = ["true AS __cdc_side"]
        for col in columns:
            have = s.columns.get(col)
            if have == types[col]:
                value = quote(col)
            elif have and types[col] == "VARCHAR":  # text as it was read (a widened column: no false update)
                value = text_of(quote(col), have, s.layouts.get(col))
            else:
                value = cast(quote(col), have, types[col]) if have else f"CAST(NULL AS {types[col]})"
            out.append(f"{value} AS {alias[col]}")
        return ", ".join(out)

    compared = [c for c in columns if c not in key and c in cur.columns]  # a removed column changes no row
    flag = {col: f"__d{i}" for i, col in enumerate(compared)}
    changed = " OR ".join(flag.values()) or "false"
    if date_field:
        d = alias[date_field]
        bumped, backwards = f"c.{d} > p.{d}", f"c.{d} < p.{d}"
    else:
        bumped = backwards = "false"
    select = ["CASE WHEN p.__cdc_side IS NULL THEN 'I' WHEN c.__cdc_side IS NULL THEN 'D' ELSE 'U' END AS op"] + [
        f"COALESCE(c.{alias[col]}, p.{alias[col]}) AS {alias[col]}" if col in key else
        f"CASE WHEN c.__cdc_side THEN c.{alias[col]} ELSE p.{alias[col]} END AS {alias[col]}" for col in columns]
    select += [f"p.{alias[c]} IS DISTINCT FROM c.{alias[c]} AS {flag[c]}" for c in compared]
    select += [f"COALESCE({bumped}, false) AS __cdc_bumped", f"COALESCE({backwards}, false) AS __cdc_backwards"]
    if output.before_image:
        select += [f"CASE WHEN c.__cdc_side AND p.__cdc_side THEN p.{alias[col]} END AS __p{alias[col]}"
                   for col in columns]

    on = " AND ".join(f"p.{alias[k]} = c.{alias[k]}" for k in key)
    work = f"__cdc_diff_{next(_names)}"
    con.execute(f"""
        CREATE TEMP TABLE {work} AS
        SELECT *, ({changed}) AS __cdc_changed FROM (
            SELECT {', '.join(select)}
            FROM (SELECT {side(prev)} FROM {prev.data}) p
            FULL OUTER JOIN (SELECT {side(cur)} FROM {cur.data}) c ON {on}
        ) WHERE op <> 'U' OR {changed} OR __cdc_bumped OR __cdc_backwards""")
    try:
        is_update = "__cdc_changed" if detect == "content" else "__cdc_bumped"
        measures = {"inserted": "count(*) FILTER (WHERE op = 'I')", "deleted": "count(*) FILTER (WHERE op = 'D')",
                    "updated": f"count(*) FILTER (WHERE op = 'U' AND {is_update})",
                    "unbumped": "count(*) FILTER (WHERE op = 'U' AND __cdc_changed AND NOT __cdc_bumped "
                                "AND NOT __cdc_backwards)",
                    "backwards": "count(*) FILTER (WHERE op = 'U' AND __cdc_backwards)",
                    "candidates": "count(*) FILTER (WHERE op = 'U')"}
        per_column = [f"count(*) FILTER (WHERE op = 'U' AND {is_update} AND {flag[c]})" for c in compared]
        row = con.execute(f"SELECT {', '.join([*measures.values(), *per_column])} FROM {work}").fetchall()[0]
        stats = DiffStats.of(dict(zip(measures, row, strict=False)), row[len(measures):])
        record(result, stats, compared)
        _check_keys(con, work, prev, cur, key, [alias[k] for k in key], stats)

        names = "[" + ", ".join(f"CASE WHEN {flag[c]} THEN {literal(c)} END" for c in compared) + "]"
        changed_list = (f"CASE WHEN op = 'U' THEN list_filter({names}, lambda x: x IS NOT NULL) "
                        "ELSE []::VARCHAR[] END" if compared else "[]::VARCHAR[]")
        # rows under their aliases first (names may differ only in case), named only in the outermost SELECT
        carried = ", ".join(["op", *(alias[c] for c in columns), *flag.values()])
        rows = f"SELECT 1 AS __o, {carried} FROM {work} WHERE op <> 'U' OR {is_update}"
        if output.before_image:  # each U row's previous values, as a B row right before it
            previous = ", ".join([*(alias[c] if c in key else f"__p{alias[c]}" for c in columns), *flag.values()])
            rows += f" UNION ALL SELECT 0, 'B', {previous} FROM {work} WHERE op = 'U' AND {is_update}"
        named = ["op"] + [f"{nullable(cast(alias[c], 'TIMESTAMP', TZ))} AS {quote(c)}" if types[c] == "TIMESTAMP"
                          else f"{nullable(alias[c])} AS {quote(c)}" for c in columns]  # naive = UTC
        named += [f"{sql} AS {quote(name)}" for name, sql in output.constants.items()]
        if output.changed_columns:
            named.append(f"{changed_list} AS _cdc_changed")  # a B row's op is not U: its list is empty
        order = ", ".join(alias[k] for k in key)
        query = f"SELECT {', '.join(named)} FROM ({rows}) ORDER BY {order}, __o"
        if output.path is None:
            result._rows = con.sql(query).to_arrow_table()
        else:
            result.path = _write_rows(con, query, [*columns, *output.constants], output, result.layouts)
        if output.details is not None:
            keys = ", ".join(f"{alias[k]} AS {quote(k)}" for k in key)
            con.execute(f"COPY (SELECT {keys}, {changed_list} AS _cdc_changed FROM {work} WHERE op = 'U' AND "
                        f"{is_update}) TO {literal(str(output.details))} (FORMAT parquet)")
        result.held_back = stats.held_back
        if result.held_back and output.path is not None:
            result.held_keys = output.path.with_name(output.path.stem + ".held.parquet")
            keys = ", ".join(f"{alias[k]} AS {quote(k)}" for k in key)
            con.execute(f"COPY (SELECT {keys} FROM {work} WHERE op = 'U' AND NOT {is_update}) TO "
                        f"{literal(str(result.held_keys))} (FORMAT parquet)")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {work}")
    warn(result, date_field, detect, stats)
    return result


def _write_rows(con, query: str, names: list[str], output: Output, layouts: dict[str, str]) -> Path:
    """COPY the change rows to Parquet; names that differ only in case (DuckDB would rename one) go via Arrow."""
    assert output.path is not None
    if len({n.lower() for n in names}) == len(names):
        con.execute(f"COPY ({query}) TO {literal(str(output.path))} (FORMAT parquet, COMPRESSION "
                    f"{output.compression}{kv_metadata(layouts)})")
        return output.path
    import pyarrow.parquet as pq  # only for names DuckDB cannot write

    reader = con.sql(query).to_arrow_reader(100_000)
    schema = reader.schema.with_metadata(layouts_metadata(layouts))
    codec = "none" if output.compression == "uncompressed" else output.compression
    with pq.ParquetWriter(output.path, schema, compression=codec) as writer:
        for batch in reader:
            writer.write_batch(batch)
    return output.path


def _check_keys(con, work: str, prev: Side, cur: Side, key: tuple[str, ...], aliases: list[str],
                stats: DiffStats) -> None:
    """Raise `InputError` for NULL or duplicate keys in either input, naming the input, a count and examples."""
    keys = ", ".join(aliases)
    suspicious = con.execute(f"""SELECT count(*) FROM (SELECT {keys} FROM {work} GROUP BY ALL
                                 HAVING count(*) > 1 OR {' OR '.join(f'{a} IS NULL' for a in aliases)})""")
    if keys_in_doubt(bool(suspicious.fetchall()[0][0]), prev.rows, cur.rows, stats):
        for side in (prev, cur):  # slow path, only for bad input: find which input, how many, examples
            check_keys(con, side.whole or side.data, key, opening(side.label))
        raise ambiguous_keys(prev.label, cur.label, key)
