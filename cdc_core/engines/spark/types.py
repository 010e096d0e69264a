"""The lake's typing law (`types`) as Spark column expressions: parse text, check it round-trips, print it back.

Each function mirrors its DuckDB twin in `types` (`parse`, `exact`, `text_of`, `project`), so both engines give every column
the same type and every value the same text. DuckDB's casts read more forms than Spark's and not always alike
(`'5.9'` is the BIGINT 6 in DuckDB, no BIGINT in Spark; `'2025'` is a timestamp in Spark, not in DuckDB), so
both engines read text as a type only in the forms both read to the same value (`types.SAFE`); a pinned column or
a date field with a value outside them is refused with the pin's one-line error, never read differently. Inferred
types are not affected: they only take values that print back to their own text, which are all safe forms.
"""

from __future__ import annotations

import re
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from ...errors import InputError
from ...types import DATE, LAYOUTS, TEXT, TZ, read_layouts, safe_form
from .parquet import file_types, spark_type

# strptime codes the Spark engine reads and prints: (regex when reading, Java pattern when printing)
CODES = {"Y": (r"(\d{1,4})", "yyyy"), "m": (r"(\d{1,2})", "MM"), "d": (r"(\d{1,2})", "dd"),
         "H": (r"(\d{1,2})", "HH"), "M": (r"(\d{1,2})", "mm"), "S": (r"(\d{1,2})", "ss"),
         "f": (r"(\d{1,6})", "SSSSSS"), "g": (r"(\d{1,3})", "SSS")}


def col(name: str) -> Column:
    return F.col("`" + name.replace("`", "``") + "`")


def parse(raw: Column, kind: str, layout: str | None = None) -> Column:
    """`raw` (text) read as `kind`; NULL where it does not read (the twin of DuckDB's `law.parse`)."""
    if kind == TEXT:
        return raw
    if layout and layout not in LAYOUTS and kind in (TZ, DATE):
        return strptime(raw, layout).cast(spark_type(kind))
    form = safe_form(kind)
    if form is None:
        raise InputError(f"the spark engine cannot read text as {kind} — use the duckdb engine for this table")
    text = raw
    if kind == TZ:  # Spark wants the seconds before a zone (`10:00Z`): DuckDB reads them as :00
        text = F.regexp_replace(raw, r"^(\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{1,2})(?=[^:\d]|$)", "$1:00")
    return F.when(raw.rlike(form), text.try_cast(spark_type(kind)))


def exact(raw: Column, parsed: Column, kind: str, layout: str | None = None) -> Column:
    """True where `parsed` prints back to exactly `raw` (the twin of DuckDB's `law.exact`: the law itself)."""
    return text_of(parsed, kind, layout) == raw


def text_of(value: Column, kind: str, layout: str | None = None) -> Column:
    """The text a typed value was read from, as DuckDB prints it (the twin of DuckDB's `law.text_of`).

    Not alike for DOUBLE (DuckDB prints `1e+20`, Spark `1.0E20`) and BLOB values (DuckDB escapes bytes): a column of
    those types that drifts to text compares on Spark's text.
    """
    if kind == TEXT:
        return value
    if layout and kind in (TZ, DATE):
        return F.date_format(value, java_pattern(layout))
    if kind == TZ:
        return F.concat(value.cast("string"), F.lit("+00"))
    return value.cast("string")


def java_pattern(layout: str) -> str:
    """A strftime layout as a Java DateTimeFormatter pattern (for `date_format`)."""
    out = []
    for code, literal in _tokens(layout):
        if code is not None:
            out.append(CODES[code][1])
        elif literal:
            out.append("'" + literal.replace("'", "''") + "'")
    return "".join(out)


def strptime(raw: Column, layout: str) -> Column:
    """`raw` read with a strftime layout (a timestamp, NULL where it does not read), as DuckDB's strptime reads it."""
    groups, regex = [], []
    for code, literal in _tokens(layout):
        if code is None:
            regex.append(re.escape(literal))
        else:
            regex.append(CODES[code][0])
            groups.append(code)
    pattern = r"^\s*" + "".join(regex) + r"\s*\z"

    def part(code: str, default: int) -> Column:
        if code not in groups:
            return F.lit(default)
        return F.regexp_extract(raw, pattern, groups.index(code) + 1).cast("int")

    if "f" in groups or "g" in groups:
        code = "f" if "f" in groups else "g"
        digits = F.regexp_extract(raw, pattern, groups.index(code) + 1)
        fraction = F.rpad(digits, 6, "0").cast("int")
    else:
        fraction = F.lit(0)
    seconds = (part("S", 0) * 1_000_000 + fraction).cast("decimal(16,6)") / F.lit(1_000_000)
    stamp = F.call_function("try_make_timestamp", part("Y", 1970), part("m", 1), part("d", 1), part("H", 0),
                            part("M", 0), seconds.cast("decimal(16,6)"))
    return F.when(raw.rlike(pattern), stamp)


def _tokens(layout: str) -> list[tuple[str | None, str]]:
    """A layout as (code, "") for each `%X` and (None, text) for the text between them; unknown codes refused."""
    out, text, i = [], "", 0
    while i < len(layout):
        if layout[i] == "%" and i + 1 < len(layout):
            code = layout[i + 1]
            if code == "%":
                text += "%"
            elif code in CODES:
                out.append((None, text))
                out.append((code, ""))
                text = ""
            else:
                raise InputError(f"the spark engine reads the date format {layout!r} only with %Y %m %d %H %M %S "
                                 "%f %g — use the duckdb engine for this table, or change the format")
            i += 2
        else:
            text += layout[i]
            i += 1
    out.append((None, text))
    return out


def project(spark, path: Path, columns: dict[str, str], *, ops: bool = False, forget: frozenset[str] = frozenset()):
    """One lake file as the target's columns (by exact name, aliased `c{i}`) and types (twin of DuckDB's `law.project`)."""
    have, layouts = file_types(path), read_layouts(path)
    df = spark.read.parquet(str(path))
    out = []
    for i, (name, kind) in enumerate(columns.items()):
        if name not in have or name in forget:
            value = F.lit(None).cast(spark_type(kind))
        elif have[name] == kind:
            value = col(name)
        elif kind == TEXT:
            value = text_of(col(name), have[name], layouts.get(name))
        else:
            value = col(name).cast(spark_type(kind))
        out.append(value.alias(f"c{i}"))
    if not ops:
        return df.select(out)
    return df.where(F.col("op").isin("I", "U", "D")).select(F.col("op"), F.col("_cdc_run_id"), *out)
