"""The `source` block (or the seed's `dataset_name`): where snapshots come from."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..logs import mask
from .fields import _check_keys, _choice, _path, _positive_int, _seconds
from .lakes import LakeConfig
from .tables import TableConfig

SOURCE_TYPES = ("demo", "directory", "kaggle", "postgres", "sqlite", "http", "s3")
SOURCE_KEYS = {"demo": {"type", "seed", "scale"}, "directory": {"type", "path"}, "kaggle": {"type", "dataset"},
               "postgres": {"type", "dsn", "lock_timeout", "statement_timeout"}, "sqlite": {"type", "path"}, "http": {"type", "url", "timeout", "max_bytes"},
               "s3": {"type", "url", "region", "endpoint_url", "profile"}}


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
    timeout: float | None = None  # http: seconds for the whole fetch of one table (None: the source's default)
    max_bytes: int | None = None  # http: the largest file (decompressed) a table may have (None: the default)
    lock_timeout: float = 60.0  # postgres: seconds a read waits for a lock another session holds
    statement_timeout: float = 1800.0  # postgres: seconds one table's read may take
    s3: LakeConfig | None = None  # s3: the drop folder's bucket, prefix and client options (as the lake's)


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
    if dsn:
        _check_dsn(dsn.strip())
    timeouts = {key: _seconds(src.get(key, SourceConfig.__dataclass_fields__[key].default), f"source.{key}")
                for key in ("lock_timeout", "statement_timeout")}
    return SourceConfig(type="postgres", dsn=dsn.strip() if dsn else None, **timeouts)


def _check_dsn(dsn: str) -> None:
    """Refuse a DSN that libpq and this tool could read differently (the error shows it masked)."""
    at = f'Config key "source.dsn" ({mask(dsn)})'
    if re.match(r"postgres(ql)?://", dsn):
        try:
            url = urllib.parse.urlsplit(dsn)  # checks a bracketed IPv6 host
            if "," not in url.netloc:  # one host (libpq also takes a list: h1:5432,h2:5433)
                url.port  # noqa: B018 — parses the port
        except ValueError as exc:
            raise ConfigError(f"{at} cannot be read ({exc}) — write an IPv6 host in brackets, like "
                              '"postgresql://user@[2001:db8::1]:5432/db", and the port as a number') from None
        if url.netloc.count("@") > 1:
            raise ConfigError(f'{at} is ambiguous: it holds more than one "@" before the host — write an "@" in '
                              'the user name or password as %40 (or put the password in PGPASSWORD or ~/.pgpass)')
        return
    if not re.fullmatch(r"(\s*\w+\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*))*\s*", dsn):
        raise ConfigError(f"{at} is ambiguous: it must be key=value pairs separated by blanks — put a value that "
                          "holds a blank or a quote in single quotes (like 'a b'), or use a postgresql:// URI")


def _http_source(src: dict) -> SourceConfig:
    url = src.get("url")
    if not isinstance(url, str) or not re.match(r"https?://[^/]+", url) or "{table}" not in url:
        shown = mask(url) if isinstance(url, str) else url
        raise ConfigError(f'Config key "source.url" is {shown!r} — use an http(s) URL with {{table}} where '
                          'the table\'s name goes, like "https://example.com/exports/{table}.csv"')
    max_bytes = src.get("max_bytes")
    return SourceConfig(type="http", url=url, timeout=_seconds(src.get("timeout"), "source.timeout"),
                        max_bytes=None if max_bytes is None else _positive_int(max_bytes, "source.max_bytes"))


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


def _check_database_keys(tables: tuple[TableConfig, ...], source: SourceConfig) -> None:
    for i, table in enumerate(tables):
        if table.query and source.type not in ("postgres", "sqlite"):
            raise ConfigError(f'Config key "tables[{i}].query" only works with a database source (postgres, '
                              f'sqlite), not {source.type} — remove it')
        if table.schema and source.type != "postgres":
            raise ConfigError(f'Config key "tables[{i}].schema" only works with the postgres source — remove it')
