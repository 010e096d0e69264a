"""Shared fixtures: a demo config in a temporary folder, and the real CLI run as a subprocess."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "lake-bucket"
DEMO_TABLES = [
    {"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"},
    {"name": "produtos", "pk": "IdProduto", "sep": ";"},
    {"name": "transacoes", "pk": "IdTransacao", "date_field": "DtCriacao", "sep": ";"},
    {"name": "transacao_produto", "pk": "idTransacaoProduto", "sep": ";"},
]


# A costly fixture shared by many tests (a server, a JVM, a venv) is made once per worker process: the tests that
# use it form one xdist group (`--dist loadgroup`), so one worker makes it and runs them all.
SHARED_FIXTURES = {"pg_server": "postgres", "spark_engine": "spark", "migrated": "airflow", "base": "base venv"}


# The groups that take longest, longest first (measured on 2 cores: ~5 min for Spark's JVMs, ~4 min for each timing
# group): the workers start on them at once and the short tests fill in around them (`--no-loadscope-reorder` keeps
# this order). Spark comes second so that its JVMs run beside Python tests, not beside each other.
LONGEST_FIRST = ("timing: stalls and formats", "spark", "timing", "airflow", "postgres", "base venv")


def _group(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("xdist_group")
    return (marker.args[0] if marker.args else marker.kwargs.get("name")) if marker else None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        groups = {SHARED_FIXTURES[name] for name in item.fixturenames if name in SHARED_FIXTURES}
        if groups and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(min(groups)))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))  # stable: a module keeps its order


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def write_config(folder: Path, **overrides) -> Path:
    """A config.json in `folder`: the demo source (small scale) into `folder/lake`, state in `folder/data`."""
    config = {"source": {"type": "demo", "seed": 7, "scale": 0.2}, "lake": "lake", "data_dir": "data",
              "timer": {"unit": "hours", "value": 6}, "tables": DEMO_TABLES, **overrides}
    path = folder / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture
def s3(monkeypatch, tmp_path: Path):
    """A moto S3 server on 127.0.0.1 with an empty bucket; the environment points boto3 at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))  # moto's state
    # lives as long as the process: start every test from an empty account
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret-value",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
                        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket="my-data-lake")  # the README's bucket
    yield client
    server.stop()


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> CliResult:
    """Run `python -m cdc_core ARGS` the way a user does, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "cdc_core", *args], cwd=cwd or ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def lake_files(lake: Path) -> list[str]:
    return sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet")) if lake.exists() else []


def apply_changes(previous: pd.DataFrame, changes: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Replay a change set onto a snapshot, independently of the core: drop D and U keys, append I and U rows."""
    cols = [c for c in changes.columns if c not in ("op", "_cdc_run_id", "_cdc_captured_at")]
    gone = set(map(tuple, changes.loc[changes.op.isin(["U", "D"]), key].astype(str).values))
    kept = previous[[k not in gone for k in map(tuple, previous[key].astype(str).values)]]
    new = changes.loc[changes.op.isin(["I", "U"]), cols]
    return pd.concat([kept, new], ignore_index=True)


def same_rows(a: pd.DataFrame, b: pd.DataFrame, key: list[str]) -> bool:
    """Equal as sets of rows (order and column order ignored; NULLs equal)."""
    if sorted(a.columns) != sorted(b.columns):
        return False
    cols = sorted(a.columns)

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        df = df[cols].astype(object)
        return df.where(df.notna(), None).sort_values(key).reset_index(drop=True)

    return norm(a).equals(norm(b))


_DATABASES = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the whole session (initdb + pg_ctl on 127.0.0.1, a free port, a temp dir).

    Without the server binaries the tests that need it fail, with one line saying what to install: a machine (or
    CI) without PostgreSQL must not pass by silently skipping them. Set CDC_TESTS_NO_POSTGRES=1 to skip them
    instead, on a machine that cannot have the server.
    """
    from .pg_server import PostgresServer

    server = PostgresServer.find()
    if server is None:
        missing = "PostgreSQL server binaries (initdb, pg_ctl) are not installed (not on PATH nor in BINDIRS of " \
                  "tests/pg_server.py)"
        if os.environ.get("CDC_TESTS_NO_POSTGRES") == "1":
            pytest.skip(f"{missing} (CDC_TESTS_NO_POSTGRES=1)")
        pytest.fail(f"{missing} — install them (Debian/Ubuntu: apt-get install postgresql), or set "
                    "CDC_TESTS_NO_POSTGRES=1 to skip the PostgreSQL tests", pytrace=False)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg(pg_server, request):
    """A fresh database for one test, owned by the login role `cdc` (password auth over TCP)."""
    from .pg_server import create_database

    pg_server.start_if_stopped()
    name = f"t{next(_DATABASES)}_" + re.sub(r"\W+", "_", request.node.name.lower())[:40]  # ≤ 63 characters
    return create_database(pg_server, name)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once per session the way a user builds it (`pip wheel . --no-deps`)."""
    from .venvs import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))
