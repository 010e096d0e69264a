"""The `tables` list: one `TableConfig` per captured table (key, date field, dialect, pinned types)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..names import reserved
from ..sql import statement
from ..types import TEXT, TZ, Column, normalize
from .fields import _bool, _check_keys, _choice, _optional_str, _optional_text, _quote, _sep
from .guards import Guards, _guards

TABLE_NAME = re.compile(r"[A-Za-z0-9_-]+")
MAX_TABLE_NAME = 128  # a name goes twice into the longest key, commits/{name}/{name}_{run}.{run}.{token}.intent,
# and once into file names (255 bytes at most on common file systems) with at most ~85 more characters
KEY_MARGIN = 96  # the characters a key or path adds to twice the name (folders, run ids, a token, suffixes)
DETECT_MODES = ("content", "date_field")
TABLE_KEYS = {"name", "pk", "date_field", "sep", "quote", "escape", "detect", "allow_empty", "columns",
              "schema", "query", "guards", "rename"}


@dataclass(frozen=True)
class TableConfig:
    """One captured table: its CSV file is `{name}.csv` in the source."""

    name: str
    pk: tuple[str, ...]
    date_field: str | None = None
    sep: str = ","
    detect: str = "content"
    allow_empty: bool = False
    quote: str = '"'
    escape: str = '"'
    columns: tuple[Column, ...] = ()  # pinned types (and date layouts) that win over what a file looks like
    schema: str | None = None  # database sources: the table's schema (postgres; default "public")
    query: str | None = None  # database sources: a SELECT whose result is the table (instead of `name`)
    guards: Guards = field(default_factory=Guards)  # when a capture is held for a person to accept
    rename: tuple[tuple[str, str], ...] = ()  # (the input's column name, the name in the lake), applied first

    def pinned(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def _tables(raw: Any, guards: Guards | None = None) -> tuple[TableConfig, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError('Config key "tables" is missing or empty — add a list like '
                          '[{"name": "clientes", "pk": "idCliente", "sep": ";"}]')
    tables, seen = [], set()
    for i, item in enumerate(raw):
        where = f"tables[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f'Config key "{where}" must be an object with "name" and "pk"')
        _check_keys(item, TABLE_KEYS, f"{where}.")
        name = item.get("name")
        if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
            raise ConfigError(f'Config key "{where}.name" is {name!r} — use only letters, digits, "_" and "-" '
                              "(it becomes a file name and an S3 key)")
        if len(name) > MAX_TABLE_NAME:
            raise ConfigError(f'Config key "{where}.name" is {len(name)} characters long — use at most '
                              f"{MAX_TABLE_NAME} (it becomes part of file names and lake keys, which file systems "
                              'and S3 limit); for a longer database table name, use "query"')
        if name in seen:
            raise ConfigError(f'Config key "{where}.name": table "{name}" is listed twice — keep one entry')
        seen.add(name)
        tables.append(TableConfig(
            name=name,
            pk=_pk(item.get("pk"), f"{where}.pk"),
            date_field=_optional_str(item.get("date_field"), f"{where}.date_field"),
            sep=_sep(item.get("sep", ","), f"{where}.sep"),
            quote=_quote(item.get("quote", '"'), f"{where}.quote"),
            escape=_quote(item.get("escape", item.get("quote", '"')), f"{where}.escape"),
            columns=_columns(item.get("columns", {}), f"{where}.columns"),
            detect=_choice(item.get("detect", "content"), DETECT_MODES, f"{where}.detect"),
            allow_empty=_bool(item.get("allow_empty", False), f"{where}.allow_empty"),
            schema=_optional_text(item.get("schema"), f"{where}.schema", "a schema name like \"public\""),
            query=_optional_text(item.get("query"), f"{where}.query", 'a query like "SELECT … FROM …"'),
            guards=_guards(item.get("guards"), f"{where}.guards", guards or Guards()),
            rename=_rename(item.get("rename", {}), f"{where}.rename"),
        ))
        _check_database_names(tables[-1], where)
        if tables[-1].schema and tables[-1].query:
            raise ConfigError(f'Config key "{where}.schema" goes with a table\'s name, not with "{where}.query" '
                              "— remove one of them (a query names its own schemas)")
        _check_pins(tables[-1], where)
        _check_dialect(tables[-1], where)
        if tables[-1].detect == "date_field" and tables[-1].date_field is None:
            raise ConfigError(f'Config key "{where}.detect" is "date_field" but "{where}.date_field" is not set '
                              '— name the date column or use "detect": "content"')
    return tuple(tables)


def _check_dialect(table: TableConfig, where: str) -> None:
    """A quote or escape that is also the separator (or a line break) makes every line mean two things."""
    for key in ("quote", "escape"):
        char = getattr(table, key)
        if char and (char == table.sep or char in "\r\n"):
            what = "the separator" if char == table.sep else "a line break"
            raise ConfigError(f'Config key "{where}.{key}" is {char!r}, which is also {what} — use another '
                              f'character (the default is \'"\'), or "" for no quoting')


def _rename(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """Columns renamed as they are read: {"op": "source_op"} (a name the change rows use, a name the source fixed)."""
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v.strip() for v in raw.values()):
        raise ConfigError(f'Config key "{where}" must be an object like {{"op": "source_op"}} (the input\'s name: '
                          "the name in the lake)")
    for old, new in raw.items():
        if reserved(new):
            raise ConfigError(f'Config key "{where}.{old}" is {new!r}, a name the change rows use themselves — '
                              "choose another name")
    if len({new.lower() for new in raw.values()}) < len(raw):
        raise ConfigError(f'Config key "{where}" gives two columns the same name — give each its own')
    return tuple(raw.items())


def _pk(raw: Any, where: str) -> tuple[str, ...]:
    cols = [raw] if isinstance(raw, str) else raw
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c for c in cols):
        raise ConfigError(f'Config key "{where}" is missing or invalid — give the key column name, '
                          'or a list of names for a composite key')
    if len(set(cols)) != len(cols):
        raise ConfigError(f'Config key "{where}" lists a column twice — list each key column once')
    return tuple(cols)


def _columns(raw: Any, where: str) -> tuple[Column, ...]:
    """Pinned column types: {"cep": "VARCHAR", "nascimento": {"type": "DATE", "format": "%d/%m/%Y"}}."""
    if not isinstance(raw, dict):
        raise ConfigError(f'Config key "{where}" must be an object like {{"cep": "VARCHAR"}}')
    pins = []
    for name, spec in raw.items():
        at = f"{where}.{name}"
        if isinstance(spec, dict):
            _check_keys(spec, {"type", "format"}, f"{at}.")
            kind, layout = spec.get("type"), spec.get("format")
        else:
            kind, layout = spec, None
        lake = normalize(kind) if isinstance(kind, str) else None
        if lake is None or lake == "BLOB":
            raise ConfigError(f'Config key "{at}" is {kind!r} — use VARCHAR, BIGINT, DOUBLE, DECIMAL(p,s), '
                              "BOOLEAN, DATE or TIMESTAMP")
        if layout is not None and (lake not in ("DATE", TZ) or not isinstance(layout, str) or "%" not in layout):
            raise ConfigError(f'Config key "{at}.format" is {layout!r} — a format (like "%d/%m/%Y") only goes '
                              "with DATE or TIMESTAMP")
        pins.append(Column(name, lake, layout))
    return tuple(pins)


def _check_pins(table: TableConfig, where: str) -> None:
    for pin in table.columns:
        if pin.name in table.pk and pin.type != TEXT:
            raise ConfigError(f'Config key "{where}.columns.{pin.name}" pins a key column to {pin.type} — key '
                              "columns are always text: remove the pin")
        if pin.name == table.date_field and pin.type != TZ:
            raise ConfigError(f'Config key "{where}.columns.{pin.name}" pins the date field to {pin.type} — the '
                              'date field is always a TIMESTAMP: use {"type": "TIMESTAMP", "format": "…"}')


def _check_name_lengths(tables: tuple[TableConfig, ...], lake: str, lake_limit: int, data_dir: str) -> None:
    """Every table's keys and local paths fit their limits: S3 keys 1024 bytes, a local path 4096 (PATH_MAX)."""
    longest = max(tables, key=lambda t: len(t.name))
    for where, prefix, limit in (("lake", lake, lake_limit), ("data_dir", data_dir, 4096)):
        if len(prefix.encode()) + 2 * len(longest.name) + KEY_MARGIN > limit:
            raise ConfigError(f'Config key "{where}" is too long for table "{longest.name}": its files would need '
                              f"paths or keys longer than {limit} bytes — shorten \"{where}\" or the table's name")


def _check_database_names(table: TableConfig, where: str) -> None:
    """A schema is a name on one line; a query is one statement (a trailing ";" or comment is fine)."""
    if table.schema and (not table.schema.isprintable() or len(table.schema) > 63):
        raise ConfigError(f'Config key "{where}.schema" is {table.schema!r} — use a schema name of at most 63 '
                          "characters, without line breaks or control characters")
    if table.query:
        try:
            body = statement(table.query)
        except ValueError:
            raise ConfigError(f'Config key "{where}.query" holds more than one statement — give one SELECT (a '
                              'trailing ";" or comment is fine)') from None
        if not body:
            raise ConfigError(f'Config key "{where}.query" holds only comments — give a query like '
                              '"SELECT … FROM …"')
