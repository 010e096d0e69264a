"""The rule for a table's column names, whatever the input (CSV header, Parquet file, database result).

Names are exact and case-sensitive, but two names that differ only in case are refused (SQL engines, Spark,
Delta and Athena take them for one column), and so are the names cdc_core's own outputs use next to the
table's columns — `op`, any `_cdc_…` name, and Delta's change-feed columns — compared ignoring case too: in a
change row they would stand twice, or be taken for ours. The table's `rename` maps an input's names to the lake's
first (`{"op": "source_op"}`), so such a column is captured under another name.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import InputError

RESERVED_PREFIX = "_cdc_"
RESERVED = frozenset({"op", "_change_type", "_commit_version", "_commit_timestamp"})


def reserved(name: str) -> bool:
    """Whether `name` is one cdc_core's change rows (or a Delta table's change feed) use themselves."""
    low = name.lower()
    return low in RESERVED or low.startswith(RESERVED_PREFIX)


def lake_names(names: Sequence[str], rename: tuple[tuple[str, str], ...], at: str) -> list[str]:
    """The input's column names as the lake names them (`rename` in the table config is applied first); a rename
    of a column the input does not have is a typo, never silently nothing."""
    mapping = dict(rename)
    if missing := [old for old in mapping if old not in names]:
        raise InputError(f'{at} has no column {", ".join(f"{m!r}" for m in missing)} that "rename" renames '
                         f'(columns: {", ".join(names)}) — fix "rename" in the config')
    return [mapping.get(name, name) for name in names]


def check_names(names: Sequence[str], at: str, shown: str | None = None) -> None:
    """Refuse a duplicate name, two names that differ only in case, a line break in a name, or a reserved name.

    `at` says where ('Table "t": t.csv'); `shown` is the header as the file writes it, for the message.
    """
    listed, fix = (f" ({shown})", "in the file") if shown is not None else ("", "at the source")
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other == name and list(names).count(name) > 1:
            raise InputError(f'{at}: column "{name}" appears twice in the header{listed} — rename one of them')
        if other != name:
            raise InputError(f'{at}: columns "{other}" and "{name}" differ only in case{listed} — SQL engines, '
                             f"Spark, Delta and Athena take them for one column: rename one of them {fix}")
    for name in names:
        if "\n" in name or "\r" in name:
            raise InputError(f"{at}: column name {name!r} holds a line break — no SQL engine or table format "
                             "takes it as a name, and CSV readers split such a header differently: rename it at "
                             "the source")
        if reserved(name):
            raise InputError(f'{at}: column "{name}" has a name the change rows use themselves (op, _cdc_…, '
                             '_change_type, _commit_version, _commit_timestamp) — rename it with "rename" in the '
                             f'table\'s config ({{"{name}": "source_{name.strip("_")}"}}), or at the source')
