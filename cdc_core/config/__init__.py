"""config.json (+ .env) → frozen dataclasses.

The seed's keys (`dataset_name`, `aws`, `timer`, `tables`) load unchanged; `source`, `lake`, `data_dir`,
`compression`, `engine` and `retention` are additions. Every validation error names the key and the fix.
Relative paths (`lake`, `data_dir`, a directory source's `path`) are relative to the config file's folder.
A key written twice in one object is refused; a `"_comment"` key may stand in any object and is ignored (JSON has
no comments). Numbers are finite and bounded (a timer of at most a year, threads up to the machine's CPUs).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .fields import (
    MAX_SECONDS,
    _bool,
    _check_keys,
    _choice,
    _duration,
    _finite,
    _path,
    _positive_int,
    _seconds,
)
from .formats import TableFormatConfig, _table_format
from .guards import Guards, _guards
from .lakes import LakeConfig, _lake
from .ops import ENV_REFERENCE, MetricsConfig, NotifyTarget, _metrics, _notify
from .sources import SourceConfig, _check_database_keys, _source
from .tables import TableConfig, _check_name_lengths, _tables

__all__ = [
    "ENV_REFERENCE",
    "CdcOptions",
    "Config",
    "EngineConfig",
    "Guards",
    "LakeConfig",
    "MetricsConfig",
    "NotifyTarget",
    "SourceConfig",
    "TableConfig",
    "TableFormatConfig",
    "Timer",
    "load_config",
    "parse_config",
]


TIMER_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
COMPRESSIONS = ("snappy", "zstd", "gzip", "lz4", "none")
TOP_KEYS = {"dataset_name", "aws", "timer", "tables", "source", "lake", "data_dir", "compression", "engine",
            "retention", "workers", "lake_claim_timeout", "notify", "metrics", "table_format", "iceberg", "cdc",
            "guards", "checkpoint_every", "lake_retention"}
CDC_KEYS = {"changed_columns", "before_image"}
ENGINE_KEYS = {"type", "memory_limit", "threads", "master", "remote", "conf"}
ENGINE_TYPES = ("duckdb", "spark")
COMMENT = "_comment"  # JSON has no comments: this key may appear in any object of the config and is ignored


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
    """The engine: `duckdb` (memory cap, spilling to `data_dir/tmp` beyond it; threads) or `spark` (a master URL
    or a Spark Connect `remote`, and Spark conf)."""

    memory_limit: str | None = None
    threads: int | None = None
    type: str = "duckdb"
    master: str | None = None
    remote: str | None = None
    conf: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CdcOptions:
    """Opt-in columns and rows of the CDC files (off by default, so existing lakes keep their schema)."""

    changed_columns: bool = False  # `_cdc_changed`: the names of each U row's changed columns
    before_image: bool = False  # a `B` row with the previous values right before each `U`


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
    checkpoint_every: int = 100  # a new base every N runs: a replay reads at most N CDC files
    lake_retention: float | None = None  # seconds of history the lake keeps (None: all of it)
    notify: tuple[NotifyTarget, ...] = ()
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig())
    table_format: TableFormatConfig | None = None
    cdc: CdcOptions = CdcOptions()
    guards: Guards = field(default_factory=Guards)
    path: Path | None = field(default=None, compare=False)

    @property
    def claim_timeout(self) -> float:
        """Seconds a writer that lost a race waits for the winner's run to appear in the lake."""
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
        raise ConfigError(f"Config file {path} does not exist — pass --config PATH, or write a starter config "
                          "with: cdc-core init") from None
    except IsADirectoryError:
        raise ConfigError(f"Config file {path} is a folder — pass --config with the path of the config file "
                          f"itself (like {path / 'config.json'})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text (byte {exc.start}) — save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"Config file {path} cannot be read ({exc.strerror or exc}) — check its permissions") \
            from None
    try:
        raw = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}) — fix the JSON syntax") from None
    _load_dotenv(path.parent / ".env")
    return parse_config(raw, base_dir=path.parent.resolve(), path=path)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key written twice (JSON would silently keep the last one); a `"_comment"` key
    (a text or a list of lines, as `cdc-core init` writes them) is a comment and is dropped."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f'Config key "{key}" is written twice in the same object — keep one of them (JSON '
                              "would silently use the last)")
        seen[key] = value
    seen.pop(COMMENT, None)
    return seen


def _load_dotenv(env_file: Path) -> None:
    if env_file.is_file():
        from dotenv import load_dotenv

        try:
            with open(env_file, encoding="utf-8") as stream:
                load_dotenv(stream=stream, override=False)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"The .env file {env_file} is not UTF-8 text (byte {exc.start}) — save it as UTF-8")\
                from None
        except OSError as exc:
            raise ConfigError(f"The .env file {env_file} cannot be read ({exc.strerror or exc}) — check its "
                              "permissions") from None


def parse_config(raw: Any, *, base_dir: Path, path: Path | None = None) -> Config:
    """Validate a decoded config object; relative paths resolve against `base_dir`."""
    if not isinstance(raw, dict):
        raise ConfigError("The config must be a JSON object with at least \"tables\" — see README.md")
    _check_keys(raw, TOP_KEYS, "")
    guards = _guards(raw.get("guards"), "guards")
    tables = _tables(raw.get("tables"), guards)
    source = _source(raw, base_dir)
    _check_database_keys(tables, source)
    lake, data_dir = _lake(raw, base_dir), _path(raw.get("data_dir", "data"), "data_dir", base_dir)
    _check_name_lengths(tables, lake.prefix if lake.is_s3 else lake.url, 1024 if lake.is_s3 else 4096,
                        str(data_dir))
    return Config(
        source=source,
        lake=lake,
        tables=tables,
        timer=_timer(raw.get("timer")),
        data_dir=data_dir,
        compression=_choice(raw.get("compression", "snappy"), COMPRESSIONS, "compression"),
        engine=_engine(raw.get("engine")),
        retention=_positive_int(raw.get("retention", 10), "retention"),
        workers=_positive_int(raw.get("workers", 2), "workers"),
        lake_claim_timeout=_seconds(raw.get("lake_claim_timeout"), "lake_claim_timeout"),
        checkpoint_every=_positive_int(raw.get("checkpoint_every", 100), "checkpoint_every"),
        lake_retention=_duration(raw.get("lake_retention"), "lake_retention"),
        notify=_notify(raw.get("notify")),
        metrics=_metrics(raw.get("metrics")),
        table_format=_table_format(raw),
        cdc=_cdc(raw.get("cdc")),
        guards=guards,
        path=path,
    )


def _timer(raw: Any) -> Timer:
    if raw is None:
        return Timer()
    if not isinstance(raw, dict):
        raise ConfigError('Config key "timer" must be an object like {"unit": "hours", "value": 6}')
    _check_keys(raw, {"unit", "value"}, "timer.")
    unit = raw.get("unit", "hours")
    if not isinstance(unit, str) or unit.lower().rstrip("s") not in TIMER_UNITS:
        raise ConfigError(f'Config key "timer.unit" is {unit!r} — use seconds, minutes, hours or days')
    value, seconds = raw.get("value"), TIMER_UNITS[unit.lower().rstrip("s")]
    if not _finite(value) or not 0 < value * seconds <= MAX_SECONDS:
        raise ConfigError(f'Config key "timer.value" is {value!r} — use a positive number, at most a year '
                          f"({MAX_SECONDS // seconds:,} {unit.lower()})")
    return Timer(unit=unit.lower(), value=value)


def _cdc(raw: Any) -> CdcOptions:
    if raw is None:
        return CdcOptions()
    if not isinstance(raw, dict):
        raise ConfigError('Config key "cdc" must be an object like {"changed_columns": true}')
    _check_keys(raw, CDC_KEYS, "cdc.")
    return CdcOptions(**{k: _bool(v, f"cdc.{k}") for k, v in raw.items()})


def _engine(raw: Any) -> EngineConfig:
    if raw is None:
        return EngineConfig()
    if not isinstance(raw, dict):
        raise ConfigError('Config key "engine" must be an object like {"memory_limit": "1GB"}')
    _check_keys(raw, ENGINE_KEYS, "engine.")
    limit = raw.get("memory_limit")
    size = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT])i?B", limit) if isinstance(limit, str) else None
    if limit is not None and (not size or float(size[1]) * 1024 ** "KMGT".index(size[2]) < 64 * 1024):
        raise ConfigError(f'Config key "engine.memory_limit" is {limit!r} — use a size of at least 64MB, like '
                          '"1GB" or "512MB"')
    threads = raw.get("threads")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads is not None and _positive_int(threads, "engine.threads") > cpus:
        raise ConfigError(f'Config key "engine.threads" is {threads!r} but this machine has {cpus} CPU(s) — use '
                          f"at most {cpus}, or remove the key (the engine then uses every CPU)")
    kind = _choice(raw.get("type", "duckdb"), ENGINE_TYPES, "engine.type")
    master, remote, conf = raw.get("master"), raw.get("remote"), raw.get("conf", {})
    if kind == "duckdb" and (master or remote or conf):
        raise ConfigError('Config keys "engine.master", "engine.remote" and "engine.conf" are for Spark — add '
                          '"type": "spark" or remove them')
    if master is not None and remote is not None:
        raise ConfigError('Config keys "engine.master" and "engine.remote" exclude each other — give a master URL '
                          '(e.g. "local[2]", "spark://host:7077") or a Spark Connect URL ("sc://host:15002")')
    for name, value in (("master", master), ("remote", remote)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f'Config key "engine.{name}" must be a URL (a string)')
    if remote is not None and not remote.startswith("sc://"):
        raise ConfigError(f'Config key "engine.remote" is {remote!r} — a Spark Connect URL starts with "sc://"')
    if not isinstance(conf, dict) or not all(isinstance(v, str | int | float | bool) for v in conf.values()):
        raise ConfigError('Config key "engine.conf" must be an object of Spark settings, e.g. '
                          '{"spark.driver.memory": "2g"}')
    return EngineConfig(memory_limit=limit,
                        threads=None if threads is None else _positive_int(threads, "engine.threads"),
                        type=kind, master=master if kind != "spark" or remote else master or "local[*]",
                        remote=remote,
                        conf={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()})
