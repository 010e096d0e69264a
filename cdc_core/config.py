"""config.json (+ .env) → frozen dataclasses.

The seed's keys (`dataset_name`, `aws`, `timer`, `tables`) load unchanged; `source`, `lake`, `data_dir`,
`compression`, `engine` and `retention` are additions. Every validation error names the key and the fix.
Relative paths (`lake`, `data_dir`, a directory source's `path`) are relative to the config file's folder.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

TABLE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
TIMER_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
DETECT_MODES = ("content", "date_field")
COMPRESSIONS = ("snappy", "zstd", "gzip", "lz4", "none")
SOURCE_TYPES = ("demo", "directory", "kaggle")

TOP_KEYS = {"dataset_name", "aws", "timer", "tables", "source", "lake", "data_dir", "compression", "engine",
            "retention", "workers", "table_format", "iceberg"}
TABLE_KEYS = {"name", "pk", "date_field", "sep", "detect", "allow_empty"}
AWS_KEYS = {"bucket", "prefix", "region", "endpoint_url", "sse", "kms_key_id", "max_attempts", "profile",
            "multipart_threshold_mb"}
ENGINE_KEYS = {"memory_limit", "threads"}
SOURCE_KEYS = {"demo": {"type", "seed", "scale"}, "directory": {"type", "path"}, "kaggle": {"type", "dataset"}}


@dataclass(frozen=True)
class TableConfig:
    """One captured table: its CSV file is `{name}.csv` in the source."""

    name: str
    pk: tuple[str, ...]
    date_field: str | None = None
    sep: str = ","
    detect: str = "content"
    allow_empty: bool = False


@dataclass(frozen=True)
class SourceConfig:
    """Where snapshots come from: `demo`, `directory` or `kaggle`."""

    type: str
    seed: int = 42
    scale: float = 1.0
    path: Path | None = None
    dataset: str | None = None


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
class TableFormatConfig:
    """The open table format kept in the lake next to its files: `delta` or `iceberg` (with its catalog)."""

    name: str
    namespace: str = "cdc"
    catalog: dict[str, str] = field(default_factory=dict, hash=False)  # pyiceberg catalog properties


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
    table_format: TableFormatConfig | None = None
    path: Path | None = field(default=None, compare=False)

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
    return Config(
        source=_source(raw, base_dir),
        lake=_lake(raw, base_dir),
        tables=tables,
        timer=_timer(raw.get("timer")),
        data_dir=_path(raw.get("data_dir", "data"), "data_dir", base_dir),
        compression=_choice(raw.get("compression", "snappy"), COMPRESSIONS, "compression"),
        engine=_engine(raw.get("engine")),
        retention=_positive_int(raw.get("retention", 10), "retention"),
        workers=_positive_int(raw.get("workers", 2), "workers"),
        table_format=_table_format(raw),
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
        if not isinstance(name, str) or not TABLE_NAME.match(name):
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
            detect=_choice(item.get("detect", "content"), DETECT_MODES, f"{where}.detect"),
            allow_empty=_bool(item.get("allow_empty", False), f"{where}.allow_empty"),
        ))
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


def _sep(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or len(raw) != 1:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use one character, e.g. ";" or ","')
    return raw


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
    dataset = src.get("dataset") or raw.get("dataset_name")
    if not isinstance(dataset, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+(/\d+)?", dataset):
        raise ConfigError(f'Config key "source.dataset" is {dataset!r} — use "owner/slug" '
                          '(or "owner/slug/N" to pin version N)')
    return SourceConfig(type="kaggle", dataset=dataset)


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


# --- table formats (Delta Lake / Iceberg tables in the lake) ---------------------------------------------------
TABLE_FORMATS = ("delta", "iceberg")
ICEBERG_KEYS = {"namespace", "catalog"}


def _table_format(raw: dict) -> TableFormatConfig | None:
    """`"table_format": "delta" | "iceberg"` and the `"iceberg"` block; an S3 lake needs an explicit catalog."""
    name, iceberg = raw.get("table_format"), raw.get("iceberg")
    if iceberg is not None and not isinstance(iceberg, dict):
        raise ConfigError('Config key "iceberg" must be an object like {"namespace": "cdc", "catalog": {"type": '
                          '"glue"}}')
    iceberg = iceberg or {}
    _check_keys(iceberg, ICEBERG_KEYS, "iceberg.")
    if name is None:
        return None
    name = _choice(name, TABLE_FORMATS, "table_format")
    namespace = iceberg.get("namespace", "cdc")
    if not isinstance(namespace, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", namespace):
        raise ConfigError(f'Config key "iceberg.namespace" is {namespace!r} — use letters, digits and "_" '
                          '(e.g. "cdc")')
    catalog = iceberg.get("catalog", {})
    if not isinstance(catalog, dict) or not all(isinstance(v, str | int | float | bool) for v in catalog.values()):
        raise ConfigError('Config key "iceberg.catalog" must be an object of pyiceberg catalog properties, e.g. '
                          '{"type": "glue", "glue.region": "us-east-1"}')
    catalog = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in catalog.items()}
    lake = raw.get("lake") if isinstance(raw.get("lake"), str) else ""
    if name == "iceberg" and not catalog and (lake.startswith("s3://") or (raw.get("lake") is None)):
        raise ConfigError('Config key "iceberg.catalog" is missing: an S3 lake needs an explicit Iceberg catalog — '
                          'add "iceberg": {"catalog": {"type": "glue"}} (or a SQL or REST catalog)')
    return TableFormatConfig(name=name, namespace=namespace, catalog=catalog)
