"""The rulebook every engine types a snapshot by: the column plan, the CSV dialect rule, the checks, one-line errors.

Key columns are text, the date field is a UTC timestamp, and every other CSV column gets the narrowest lake type
that every value of the *whole file* round-trips through (see `types`); Parquet inputs keep their types, mapped to
the lake's. Types are stable per table: given the previous snapshot's columns, a column keeps its type while the
new file fits it, and widens once to text when it does not (reported; the widening alone changes no row).
Pinned types (`"columns"` in the table config) win and must fit. A bad header, a bad date, a value that does not
fit a pinned type, and NULL or duplicate keys each raise one `InputError` that says what, where and how to fix.

An engine brings only its expressions: how to read a column, parse it, check it and write the result
(`Typing`); which columns failed is data its `failures` query returns, never read from an error's text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from ..config import TableConfig
from ..errors import InputError
from ..names import check_names, lake_names
from ..sql import literal
from ..types import DATE, TEXT, TZ, Column, guess, lake_type_of, read_layouts
from .parquetmeta import file_names

EXAMPLES = 5  # values shown in an error
E = TypeVar("E")  # an engine's column expression: SQL text (DuckDB), a Column (Spark)


def is_parquet(path: Path) -> bool:
    """Whether a table's file is Parquet (by its magic bytes), else CSV or gzipped CSV."""
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


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


def schema_of(path: Path) -> dict[str, Column]:
    """The columns (exact names, lake types, timestamp layouts) of a snapshot any engine wrote."""
    import duckdb  # the core's own reader of Parquet types, whichever engine wrote the file

    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        found = file_columns(con, path)
    finally:
        con.close()
    layouts = read_layouts(path)
    return {name: Column(name, lake_type_of(kind), layouts.get(name)) for name, (_, kind) in found.items()}


def quality(nulls: int, distinct: int, low: str | None, high: str | None) -> dict:
    """One column's data-quality numbers as a snapshot records them (min and max cut at 100 characters)."""
    return {"nulls": nulls, "distinct": distinct, "min": low[:100] if low else None,
            "max": high[:100] if high else None}


@dataclass
class Plan(Generic[E]):
    """How one output column is made from the input: its expression, its type, and the check its values pass.

    `mode`: `cast` (no check: typed input, text), `verify` (must print back to its text, else the column widens
    to text), `strict` (must parse: a pin or the date field, else the file is refused).
    """

    name: str
    src: E  # the input column, as the engine's expression
    type: str
    layout: str | None = None
    mode: str = "cast"
    was: str | None = None  # the type the previous snapshot had, when this plan keeps it
    hint: str | None = None  # the ISO layout a timestamp without a layout is likely written in (speed only)


def checked(plans: list[Plan]) -> list[tuple[int, Plan]]:
    """The plans whose values the write checks, with their positions."""
    return [(i, p) for i, p in enumerate(plans) if p.mode != "cast"]


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


def csv_plans(header: list[str], table: TableConfig, previous: dict[str, Column],
              column: Callable[[str], E]) -> tuple[list[Plan[E]], list[Plan[E]]]:
    """(every column's plan, the plans whose type is to be inferred); `column`: an input column by its name."""
    plans, unknown = [], []
    for name in header:
        rule = csv_rule(name, table, previous)
        plans.append(Plan(name, column(name), *(rule or (TEXT, None, "cast", None))))
        if rule is None:
            unknown.append(plans[-1])
    return plans, unknown


def infer(plans: list[Plan], found: Sequence) -> None:
    """Guess each plan's type from its smallest and largest value and its width over the whole file (`found`:
    those three for each plan, in order); the write verifies the guess."""
    for i, plan in enumerate(plans):
        plan.type, plan.layout = guess(*found[i * 3:(i + 1) * 3])
        if plan.type != TEXT:
            plan.mode = "verify"


class Expressions(Protocol[E]):
    """An engine's expressions for a typed (Parquet) input's columns, by their names in the file."""

    def typed(self, source: str, kind: str, lake: str) -> E:
        """The column in its lake type (`kind`: as DuckDB names the file's type)."""
        ...

    def raw(self, source: str) -> E:
        """The column as the file holds it (text that a pin or the date field parses strictly)."""
        ...

    def text_of(self, value: E, kind: str) -> E:
        """The text a value of lake type `kind` prints as (DuckDB's `law.text_of`): keys, and columns widened to text."""
        ...


def parquet_names(sources: list[str], table: TableConfig, at: str) -> list[str]:
    """A Parquet file's column names in the lake (renamed, checked), which must hold the key and the date field."""
    names = lake_names(sources, table.rename, at)
    check_names(names, at)
    for col in (*table.pk, *([table.date_field] if table.date_field else [])):
        if col not in names:
            raise InputError(f'{at}: column "{col}" is missing (columns: {", ".join(names)}) — fix the config or '
                             "the source")
    return names


def parquet_plans(names: list[str], sources: list[str], kinds: list[str], table: TableConfig,
                  previous: dict[str, Column], at: str, x: Expressions[E]) -> list[Plan[E]]:
    """A typed input keeps its types (mapped to the lake's); a type that differs from before becomes text."""
    plans: list[Plan[E]] = []
    for name, source, kind in zip(names, sources, kinds, strict=True):
        lake, pin, before = lake_type_of(kind), table.pinned(name), previous.get(name)
        typed = x.typed(source, kind, lake)
        if name in table.pk:
            plans.append(Plan(name, x.text_of(typed, lake), TEXT))
        elif pin is not None or name == table.date_field:
            want = pin.type if pin is not None else TZ
            if lake == want or (want == TZ and lake == DATE):
                plans.append(Plan(name, x.typed(source, kind, want), want, pin.layout if pin else None))
            elif lake == TEXT:
                plans.append(Plan(name, x.raw(source), want, pin.layout if pin else None, mode="strict"))
            else:
                raise InputError(f'{at}: column "{name}" is {kind}, not {want} — fix the pin in "columns" or '
                                 '"date_field" in the config')
        elif before is not None and before.type != lake:
            plans.append(Plan(name, x.text_of(typed, lake), TEXT, was=None if before.type == TEXT else before.type))
        else:
            plans.append(Plan(name, typed, lake))
    return plans


def check_pins(table: TableConfig, names: list[str], at: str) -> None:
    """A pinned column the file does not have is a typo or a column gone upstream: say so, never ignore the pin."""
    if missing := [pin.name for pin in table.columns if pin.name not in names]:
        named = ", ".join(f'"{m}"' for m in missing)
        raise InputError(f'{at} has no column {named} that "columns" pins (columns: {", ".join(names)}) — fix the '
                         'name in "columns" in the config, or remove the pin')


class Typing(Protocol):
    """What an engine does to write a file's planned columns (see `settle_types`)."""

    errors: tuple[type[BaseException], ...]  # how the engine's write fails

    def write(self, plans: list[Plan], attempt: int) -> Any:
        """Write every planned column, checking each value of a checked plan; fail at the first that does not fit."""
        ...

    def failures(self, plans: list[Plan]) -> list[Any] | None:
        """After a failed write: for each checked plan (`checked`), the smallest value that fails its check, or
        None; None altogether when no check failed (the write failed for another reason)."""
        ...

    def examples(self, plans: list[Plan], i: int) -> list:
        """Up to `EXAMPLES` distinct values (in order) that fail plan `i`'s check."""
        ...


def settle_types(plans: list[Plan], at: str, engine: Typing) -> tuple[Any, dict[str, tuple[str, str]]]:
    """(the write's result, the widened columns): write; when a value does not fit, widen every verified column
    some value does not fit, refuse a strict one, and write again — one pass when nothing widens."""
    widened: dict[str, tuple[str, str]] = {}
    for attempt in range(len(plans) + 2):
        try:
            return engine.write(plans, attempt), widened
        except engine.errors:
            found = engine.failures(plans)
            if found is None:
                raise
            widened |= _settle(plans, found, at, engine)
    raise InputError(f"{at}: the column types never settled — report this as a bug")


def _settle(plans: list[Plan], found: list, at: str, engine: Typing) -> dict[str, tuple[str, str]]:
    widened = {}
    for (i, plan), example in zip(checked(plans), found, strict=True):
        if example is None:
            continue
        if plan.mode == "strict":
            raise refusal(plan, engine.examples(plans, i), at)
        widened[plan.name] = (plan.type, example)
        plan.type, plan.mode, plan.layout = TEXT, "cast", None
    return widened


def refusal(plan: Plan, bad: list, at: str) -> InputError:
    """The one line for a date field or a pinned column with values that are not of its type."""
    examples = ", ".join(repr(v) for v in bad)
    if plan.type == TZ and plan.layout is None:
        return InputError(f'{at}: date field "{plan.name}" has values that are not dates (e.g. {examples}) — use '
                          'YYYY-MM-DD[ HH:MM:SS[.fff]], or give its format in "columns" in the config')
    form = f" in the format {plan.layout!r}" if plan.layout else ""
    return InputError(f'{at}: column "{plan.name}" is pinned to {plan.type}{form} but has values that are not '
                      f'(e.g. {examples}) — fix the file or the pin in "columns" in the config')


def unreadable_parquet(at: str, reason: str) -> InputError:
    return InputError(f"{at} cannot be read as Parquet ({reason}) — fix the file")


def empty_keys(where: str, pk: Sequence[str], rows: int) -> InputError:
    return InputError(f"{where}: {rows} row(s) have an empty key ({', '.join(pk)}) — every row needs a key: "
                      'fix the file or "pk" in the config')


def duplicate_keys(where: str, pk: Sequence[str], keys: int, examples: list[Sequence]) -> InputError:
    """`keys` key values appear more than once; `examples`: (the key's values…, how often) of the first few."""
    shown = ", ".join("/".join(str(v) for v in r[:len(pk)]) + f" ×{r[len(pk)]}" for r in examples)
    return InputError(f"{where}: {keys} key value(s) appear more than once (e.g. {shown}) — "
                      'a key must identify one row: fix the file or "pk" in the config')


def snapshot_of(table: TableConfig, path: Path, rows: int, plans: list[Plan], widened: dict[str, tuple[str, str]],
                found: dict[str, dict]) -> Snapshot:
    """The snapshot a write of these plans made."""
    return Snapshot(table=table.name, path=path, rows=rows, columns={p.name: p.type for p in plans},
                    layouts={p.name: p.layout for p in plans if p.layout}, widened=widened, quality=found)


def file_columns(con, path: Path) -> dict[str, tuple[str, str]]:
    """A Parquet file's exact column names → (the name DuckDB reads it under, its DuckDB type).

    DuckDB renames a column whose name differs only in case from an earlier one (`Nome` → `Nome_1`); the
    file's own schema keeps the exact names, in the same order.
    """
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(path))})").fetchall()
    return {name: (row[0], row[1]) for name, row in zip(file_names(con, path), described, strict=True)}
