"""config.json (+ .env) → frozen dataclasses.

The seed's keys (`dataset_name`, `aws`, `timer`, `tables`) load unchanged; `source`, `lake`, `data_dir`,
`compression`, `engine` and `retention` are additions. Every validation error names the key and the fix.
Relative paths (`lake`, `data_dir`, a directory source's `path`) are relative to the config file's folder.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .types import TEXT, TZ, Column, normalize

TABLE_NAME = re.compile(r"[A-Za-z0-9_-]+")
TIMER_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
DETECT_MODES = ("content", "date_field")
COMPRESSIONS = ("snappy", "zstd", "gzip", "lz4", "none")
SOURCE_TYPES = ("demo", "directory", "kaggle", "postgres", "sqlite", "http", "s3")

TOP_KEYS = {"dataset_name", "aws", "timer", "tables", "source", "lake", "data_dir", "compression", "engine",
            "retention", "workers", "lake_claim_timeout", "notify", "metrics"}
TABLE_KEYS = {"name", "pk", "date_field", "sep", "quote", "escape", "detect", "allow_empty", "columns",
              "schema", "query"}
AWS_KEYS = {"bucket", "prefix", "region", "endpoint_url", "sse", "kms_key_id", "max_attempts", "profile",
            "multipart_threshold_mb"}
ENGINE_KEYS = {"memory_limit", "threads"}
SOURCE_KEYS = {"demo": {"type", "seed", "scale"}, "directory": {"type", "path"}, "kaggle": {"type", "dataset"},
               "postgres": {"type", "dsn"}, "sqlite": {"type", "path"}, "http": {"type", "url"},
               "s3": {"type", "url", "region", "endpoint_url", "profile"}}


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

    def pinned(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class SourceConfig:
    """Where snapshots come from: `demo`, `directory`, `kaggle`, `postgres`, `sqlite`, `http` or `s3`."""

    type: str
    seed: int = 42
    scale: float = 1.0
    path: Path | None = None
    dataset: str | None = None
    dsn: str | None = None  # postgres: a libpq URI or key=value string; None → the PG* environment variables
    url: str | None = None  # http: a URL with {table}; s3: s3://bucket/prefix/
    s3: LakeConfig | None = None  # s3: the drop folder's bucket, prefix and client options (as the lake's)


@dataclass(frozen=True)
class LakeConfig:
    """Where captures go: a local folder or `s3://bucket/prefix`."""

    url: str
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    max_attempts: int = 5
    profile: str | None = None
    multipart_threshold_mb: int = 64

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None


@dataclass(frozen=True)
class Timer:
    """Interval of the timed loop."""

    unit: str = "hours"
    value: float = 6

    @property
    def seconds(self) -> float:
        return self.value * TIMER_UNITS[self.unit.rstrip("s")]


@dataclass(frozen=True)
class EngineConfig:
    """DuckDB settings: memory cap (spills to `data_dir/tmp` beyond it) and threads."""

    memory_limit: str | None = None
    threads: int | None = None


@dataclass(frozen=True)
class Config:
    """A whole, validated configuration."""

    source: SourceConfig
    lake: LakeConfig
    tables: tuple[TableConfig, ...]
    timer: Timer = Timer()
    data_dir: Path = Path("data")
    compression: str = "snappy"
    engine: EngineConfig = EngineConfig()
    retention: int = 10
    workers: int = 2
    lake_claim_timeout: float | None = None
    notify: tuple[NotifyTarget, ...] = ()
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig())
    path: Path | None = field(default=None, compare=False)

    @property
    def claim_timeout(self) -> float:
        """Seconds after which another writer may take over a claim whose writer never came back."""
        return self.lake_claim_timeout if self.lake_claim_timeout is not None else 3 * self.timer.seconds

    def table(self, name: str) -> TableConfig:
        for table in self.tables:
            if table.name == name:
                return table
        raise ConfigError(f'Table "{name}" is not in the config — choose one of: {", ".join(self.table_names)}')

    @property
    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]


def load_config(path: str | Path = "config.json") -> Config:
    """Read and validate a config file, loading `.env` from its folder first (existing variables win)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist — pass --config PATH or create it "
                          "(see README.md, section Config)") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}) — fix the JSON syntax") from None
    _load_dotenv(path.parent / ".env")
    return parse_config(raw, base_dir=path.parent.resolve(), path=path)


def _load_dotenv(env_file: Path) -> None:
    if env_file.is_file():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)


def parse_config(raw: Any, *, base_dir: Path, path: Path | None = None) -> Config:
    """Validate a decoded config object; relative paths resolve against `base_dir`."""
    if not isinstance(raw, dict):
        raise ConfigError("The config must be a JSON object with at least \"tables\" — see README.md")
    _check_keys(raw, TOP_KEYS, "")
    tables = _tables(raw.get("tables"))
    source = _source(raw, base_dir)
    _check_database_keys(tables, source)
    return Config(
        source=source,
        lake=_lake(raw, base_dir),
        tables=tables,
        timer=_timer(raw.get("timer")),
        data_dir=_path(raw.get("data_dir", "data"), "data_dir", base_dir),
        compression=_choice(raw.get("compression", "snappy"), COMPRESSIONS, "compression"),
        engine=_engine(raw.get("engine")),
        retention=_positive_int(raw.get("retention", 10), "retention"),
        workers=_positive_int(raw.get("workers", 2), "workers"),
        lake_claim_timeout=_seconds(raw.get("lake_claim_timeout"), "lake_claim_timeout"),
        notify=_notify(raw.get("notify")),
        metrics=_metrics(raw.get("metrics")),
        path=path,
    )


def _check_keys(obj: dict, allowed: set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f'did you mean "{close[0]}"?' if close else f"allowed keys: {', '.join(sorted(allowed))}"
            raise ConfigError(f'Unknown config key "{where}{key}" — remove it or fix its name ({hint})')


def _tables(raw: Any) -> tuple[TableConfig, ...]:
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
        ))
        if tables[-1].schema and tables[-1].query:
            raise ConfigError(f'Config key "{where}.schema" goes with a table\'s name, not with "{where}.query" '
                              "— remove one of them (a query names its own schemas)")
        _check_pins(tables[-1], where)
        if tables[-1].detect == "date_field" and tables[-1].date_field is None:
            raise ConfigError(f'Config key "{where}.detect" is "date_field" but "{where}.date_field" is not set '
                              '— name the date column or use "detect": "content"')
    return tuple(tables)


def _pk(raw: Any, where: str) -> tuple[str, ...]:
    cols = [raw] if isinstance(raw, str) else raw
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c for c in cols):
        raise ConfigError(f'Config key "{where}" is missing or invalid — give the key column name, '
                          'or a list of names for a composite key')
    if len(set(cols)) != len(cols):
        raise ConfigError(f'Config key "{where}" lists a column twice — list each key column once')
    return tuple(cols)


def _optional_str(raw: Any, where: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ConfigError(f'Config key "{where}" must be a column name (a string) or null')
    return raw


def _optional_text(raw: Any, where: str, example: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f'Config key "{where}" is {raw!r} — use {example}, or remove the key')
    return raw.strip()


def _sep(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or len(raw) != 1:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use one character, e.g. ";" or ","')
    return raw


def _quote(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or len(raw) > 1:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use one character (default \'"\'), or "" for none')
    return raw


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


def _choice(raw: Any, allowed: tuple[str, ...], where: str) -> str:
    if raw not in allowed:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use one of: {", ".join(allowed)}')
    return raw


def _bool(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(f'Config key "{where}" is {raw!r} — use true or false')
    return raw


def _positive_int(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use a whole number of at least 1')
    return raw


def _seconds(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use a number of seconds above 0')
    return float(raw)


def _path(raw: Any, where: str, base_dir: Path) -> Path:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f'Config key "{where}" must be a folder path (a string)')
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base_dir / path


def _timer(raw: Any) -> Timer:
    if raw is None:
        return Timer()
    if not isinstance(raw, dict):
        raise ConfigError('Config key "timer" must be an object like {"unit": "hours", "value": 6}')
    _check_keys(raw, {"unit", "value"}, "timer.")
    unit = raw.get("unit", "hours")
    if not isinstance(unit, str) or unit.lower().rstrip("s") not in TIMER_UNITS:
        raise ConfigError(f'Config key "timer.unit" is {unit!r} — use seconds, minutes, hours or days')
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f'Config key "timer.value" is {value!r} — use a positive number')
    return Timer(unit=unit.lower(), value=value)


def _engine(raw: Any) -> EngineConfig:
    if raw is None:
        return EngineConfig()
    if not isinstance(raw, dict):
        raise ConfigError('Config key "engine" must be an object like {"memory_limit": "1GB"}')
    _check_keys(raw, ENGINE_KEYS, "engine.")
    limit = raw.get("memory_limit")
    if limit is not None and not (isinstance(limit, str) and re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", limit)):
        raise ConfigError(f'Config key "engine.memory_limit" is {limit!r} — use a size like "1GB" or "512MB"')
    threads = raw.get("threads")
    return EngineConfig(memory_limit=limit,
                        threads=None if threads is None else _positive_int(threads, "engine.threads"))


def _source(raw: dict, base_dir: Path) -> SourceConfig:
    src = raw.get("source")
    if src is None:
        dataset = raw.get("dataset_name")
        if not dataset:
            raise ConfigError('Config has no source — add "source": {"type": "demo"} or '
                              '"dataset_name": "owner/slug" for a Kaggle dataset')
        src = {"type": "kaggle", "dataset": dataset}
    if not isinstance(src, dict):
        raise ConfigError('Config key "source" must be an object like {"type": "demo"}')
    kind = _choice(src.get("type"), SOURCE_TYPES, "source.type")
    _check_keys(src, SOURCE_KEYS[kind], "source.")
    if kind == "demo":
        seed = src.get("seed", 42)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f'Config key "source.seed" is {seed!r} — use a whole number of at least 0')
        scale = src.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 1000:
            raise ConfigError(f'Config key "source.scale" is {scale!r} — use a number above 0 (1 ≈ 5k clientes)')
        return SourceConfig(type="demo", seed=seed, scale=float(scale))
    if kind == "directory":
        return SourceConfig(type="directory", path=_path(src.get("path"), "source.path", base_dir))
    if kind in ("postgres", "sqlite"):
        return _database_source(kind, src, base_dir)
    if kind == "http":
        return _http_source(src)
    if kind == "s3":
        return _s3_source(src, raw)
    dataset = src.get("dataset") or raw.get("dataset_name")
    if not isinstance(dataset, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+(/\d+)?", dataset):
        raise ConfigError(f'Config key "source.dataset" is {dataset!r} — use "owner/slug" '
                          '(or "owner/slug/N" to pin version N)')
    return SourceConfig(type="kaggle", dataset=dataset)


def _database_source(kind: str, src: dict, base_dir: Path) -> SourceConfig:
    """postgres: a DSN (or none: the PG* variables); sqlite: a database file."""
    if kind == "sqlite":
        if not isinstance(src.get("path"), str) or not src["path"]:
            raise ConfigError(f'Config key "source.path" is {src.get("path")!r} — give the SQLite database file, '
                              'like "data/shop.db"')
        return SourceConfig(type="sqlite", path=_path(src["path"], "source.path", base_dir))
    dsn = src.get("dsn")
    if dsn is not None and (not isinstance(dsn, str) or not dsn.strip()):
        raise ConfigError('Config key "source.dsn" must be a connection string like '
                          '"postgresql://user@host:5432/db" — or leave it out to use the PG* variables')
    return SourceConfig(type="postgres", dsn=dsn.strip() if dsn else None)


def _http_source(src: dict) -> SourceConfig:
    url = src.get("url")
    if not isinstance(url, str) or not re.match(r"https?://[^/]+", url) or "{table}" not in url:
        raise ConfigError(f'Config key "source.url" is {_masked(url)!r} — use an http(s) URL with {{table}} where '
                          'the table\'s name goes, like "https://example.com/exports/{table}.csv"')
    return SourceConfig(type="http", url=url)


def _s3_source(src: dict, raw: dict) -> SourceConfig:
    """An S3 drop folder; client options from `source`, else from the lake's `aws` block."""
    url = src.get("url")
    bucket, _, prefix = url[5:].partition("/") if isinstance(url, str) and url.startswith("s3://") else ("", "", "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(f'Config key "source.url" is {url!r} — use "s3://bucket/folder/" (a valid bucket name)')
    aws = raw.get("aws") if isinstance(raw.get("aws"), dict) else {}
    options = {key: src.get(key, aws.get(key)) for key in ("region", "endpoint_url", "profile")}
    for key, value in options.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f'Config key "source.{key}" is {value!r} — use a string, or leave it out to use '
                              f'"aws.{key}"')
    prefix = "/".join(part for part in prefix.split("/") if part)
    url = f"s3://{bucket}/{prefix}"
    return SourceConfig(type="s3", url=url, s3=LakeConfig(
        url=url, bucket=bucket, prefix=prefix, **options,
        max_attempts=_positive_int(aws.get("max_attempts", 5), "aws.max_attempts")))


def _masked(url: Any) -> Any:
    """A URL with any password replaced by ***."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url) if isinstance(url, str) else url


def _check_database_keys(tables: tuple[TableConfig, ...], source: SourceConfig) -> None:
    for i, table in enumerate(tables):
        if table.query and source.type not in ("postgres", "sqlite"):
            raise ConfigError(f'Config key "tables[{i}].query" only works with a database source (postgres, '
                              f'sqlite), not {source.type} — remove it')
        if table.schema and source.type != "postgres":
            raise ConfigError(f'Config key "tables[{i}].schema" only works with the postgres source — remove it')


def _lake(raw: dict, base_dir: Path) -> LakeConfig:
    aws = raw.get("aws")
    if aws is not None:
        if not isinstance(aws, dict):
            raise ConfigError('Config key "aws" must be an object like {"bucket": "my-lake", "prefix": "loyalty"}')
        _check_keys(aws, AWS_KEYS, "aws.")
    aws = aws or {}
    lake = raw.get("lake")
    if lake is None:
        if not aws.get("bucket"):
            raise ConfigError('Config has no lake — add "lake": "lake" (a local folder), '
                              '"lake": "s3://bucket/prefix", or an "aws" block with "bucket"')
        return _s3_lake(aws["bucket"], aws.get("prefix") or "", aws)
    if not isinstance(lake, str) or not lake:
        raise ConfigError('Config key "lake" must be a folder path or "s3://bucket/prefix"')
    if lake.startswith("s3://"):
        bucket, _, prefix = lake[len("s3://"):].partition("/")
        if not bucket:
            raise ConfigError(f'Config key "lake" is {lake!r} — name the bucket: "s3://bucket/prefix"')
        return _s3_lake(bucket, prefix, aws)
    path = _path(lake, "lake", base_dir)
    return LakeConfig(url=str(path), path=path)


def _s3_lake(bucket: str, prefix: str, aws: dict) -> LakeConfig:
    if not isinstance(bucket, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(f'Config key "aws.bucket" is {bucket!r} — use a valid S3 bucket name')
    if not isinstance(prefix, str):
        raise ConfigError('Config key "aws.prefix" must be a string (or empty)')
    prefix = "/".join(part for part in prefix.split("/") if part)
    sse = aws.get("sse")
    if sse not in (None, "AES256", "aws:kms"):
        raise ConfigError(f'Config key "aws.sse" is {sse!r} — use "AES256" or "aws:kms"')
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    return LakeConfig(url=url, bucket=bucket, prefix=prefix, region=aws.get("region"),
                      endpoint_url=aws.get("endpoint_url"), sse=sse, kms_key_id=aws.get("kms_key_id"),
                      max_attempts=_positive_int(aws.get("max_attempts", 5), "aws.max_attempts"),
                      profile=aws.get("profile"),
                      multipart_threshold_mb=_positive_int(aws.get("multipart_threshold_mb", 64),
                                                           "aws.multipart_threshold_mb"))


# --- alerts and monitoring: "notify" (Apprise targets) and "metrics" (Prometheus) ---------------------------------
NOTIFY_EVENTS = ("failure", "held", "recovered", "changes")
NOTIFY_DEFAULT_EVENTS = ("failure", "held", "recovered")
NOTIFY_KEYS = {"url", "on"}
METRICS_KEYS = {"port", "host", "textfile"}
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class NotifyTarget:
    """An Apprise URL (its `${VAR}` references are expanded only when sending) and the events it gets."""

    url: str = field(repr=False)  # may hold a password written into config.json: never shown
    on: tuple[str, ...] = NOTIFY_DEFAULT_EVENTS


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics: the textfile after every cycle, and `/metrics` on `host:port` in the timed loop."""

    textfile: bool = True
    port: int | None = None
    host: str = "127.0.0.1"


def _notify(raw: Any) -> tuple[NotifyTarget, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError('Config key "notify" must be a list like [{"url": "mailto://…", "on": ["failure"]}]')
    targets = []
    for i, item in enumerate(raw):
        where = f"notify[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f'Config key "{where}" must be an object with "url" (an Apprise URL) and "on"')
        _check_keys(item, NOTIFY_KEYS, f"{where}.")
        url = item.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f'Config key "{where}.url" is missing — give an Apprise URL, e.g. '
                              '"mailto://user:${SMTP_PASSWORD}@smtp.example.com?to=ops@example.com"')
        on = item.get("on", list(NOTIFY_DEFAULT_EVENTS))
        if isinstance(on, str):
            on = [on]
        if not isinstance(on, list) or not on:
            raise ConfigError(f'Config key "{where}.on" must be a list of events: {", ".join(NOTIFY_EVENTS)}')
        for event in on:
            if event not in NOTIFY_EVENTS:
                close = difflib.get_close_matches(str(event), NOTIFY_EVENTS, n=1)
                hint = f'did you mean "{close[0]}"?' if close else f"use: {', '.join(NOTIFY_EVENTS)}"
                raise ConfigError(f'Config key "{where}.on" has an unknown event {event!r} — {hint}')
        for name in ENV_REFERENCE.findall(url):
            if name not in os.environ:
                raise ConfigError(f'Config key "{where}.url" refers to ${{{name}}}, which is not set — add '
                                  f"{name}=… to the .env file next to the config (or to the environment)")
        from .notify import check_url

        check_url(url.strip(), where)
        targets.append(NotifyTarget(url=url.strip(), on=tuple(dict.fromkeys(on))))
    return tuple(targets)


def _metrics(raw: Any) -> MetricsConfig:
    if raw is None:
        return MetricsConfig()
    if not isinstance(raw, dict):
        raise ConfigError('Config key "metrics" must be an object like {"port": 9108}')
    _check_keys(raw, METRICS_KEYS, "metrics.")
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError("Prometheus metrics need prometheus_client: pip install 'cdc-core[metrics]'")
    port = raw.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ConfigError(f'Config key "metrics.port" is {port!r} — use a TCP port number like 9108')
    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ConfigError(f'Config key "metrics.host" is {host!r} — use an address to listen on, e.g. "127.0.0.1" '
                          'or "0.0.0.0" for every interface')
    return MetricsConfig(textfile=_bool(raw.get("textfile", True), "metrics.textfile"), port=port, host=host)
