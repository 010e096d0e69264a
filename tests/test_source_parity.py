"""Every source captures the real clientes versions exactly as the directory source does, through the real CLI.

Version 2025-09-18 → 2025-09-22 of the Kaggle dataset's clientes: 27 inserted, 138 updated, 0 deleted. The same
two versions reach each source the way they would in life — files in a folder, a SQLite file changed by row
updates, a web server, an S3 drop folder, a PostgreSQL table changed by DELETE/UPDATE/INSERT — and each capture's
full load and change rows (names, types, values) must equal the directory source's.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .clientes_db import CLIENTES, KEY, V1, V2, pg_change_to, pg_create, sqlite_put
from .conftest import BUCKET, run_cli, same_rows, write_config
from .http_server import FileServer

AUDIT = ["_cdc_run_id", "_cdc_captured_at"]


@dataclass
class Drop:
    """A source config and how a new version of clientes reaches that source."""

    source: dict
    put: Callable[[Path], None]


def capture(folder: Path, drop: Drop) -> tuple[pq.ParquetFile, pq.ParquetFile, str]:
    """Capture V1 then V2 with the CLI; the second run's change file, the full load, and the summary."""
    config = write_config(folder, source=drop.source, tables=[CLIENTES])
    drop.put(V1)
    first = run_cli("--once", "--config", str(config))
    assert first.code == 0, first.err
    drop.put(V2)
    second = run_cli("--once", "--config", str(config))
    assert second.code == 0, second.err
    lake = folder / "lake"
    (cdc,) = sorted((lake / "cdc" / "clientes").glob("*.parquet"))
    return pq.ParquetFile(cdc), pq.ParquetFile(lake / "full-load" / "clientes" / "clientes.parquet"), second.out


def columns(file: pq.ParquetFile) -> list[tuple[str, str]]:
    """Names and types (DuckDB marks a column NOT NULL when a Parquet input's statistics show no NULL)."""
    return [(f.name, str(f.type)) for f in file.schema_arrow]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("directory")
    (folder / "drop").mkdir()
    return capture(folder, Drop({"type": "directory", "path": "drop"},
                                lambda v: shutil.copyfile(v, folder / "drop" / "clientes.csv")))


@pytest.fixture(params=["sqlite", "http", "s3", "postgres"])
def drop(request: pytest.FixtureRequest, tmp_path: Path):
    kind = request.param
    if kind == "sqlite":
        yield Drop({"type": "sqlite", "path": "shop.db"}, lambda v: sqlite_put(tmp_path / "shop.db", v))
    elif kind == "http":
        (tmp_path / "www").mkdir()
        with FileServer(tmp_path / "www") as server:
            yield Drop({"type": "http", "url": server.url + "/exports/{table}.csv"},
                       lambda v: shutil.copyfile(v, (tmp_path / "www" / "exports").mkdir(exist_ok=True)
                                                 or tmp_path / "www" / "exports" / "clientes.csv"))
    elif kind == "s3":
        s3 = request.getfixturevalue("s3")
        folder = f"drop-{uuid.uuid4().hex[:8]}/loyalty"  # moto keeps objects across its servers in one process
        yield Drop({"type": "s3", "url": f"s3://{BUCKET}/{folder}/"},
                   lambda v: s3.put_object(Bucket=BUCKET, Key=f"{folder}/clientes.csv", Body=v.read_bytes()))
    else:
        db = request.getfixturevalue("pg")
        yield Drop({"type": "postgres", "dsn": db.dsn},
                   lambda v: pg_create(db, v) if v == V1 else pg_change_to(db, v))


def test_each_source_captures_the_real_clientes_versions_as_the_directory_source_does(drop: Drop, tmp_path: Path,
                                                                                      reference):
    cdc, full, out = capture(tmp_path, drop)
    want_cdc, want_full, _ = reference
    assert re.search(r"clientes\s+changes\s+I\s+27\s+U\s+138\s+D\s+0\s", out), out
    assert columns(cdc) == columns(want_cdc)  # the same names and lake types, in the same order
    assert columns(full) == columns(want_full)
    got, want = cdc.read().drop_columns(AUDIT).to_pandas(), want_cdc.read().drop_columns(AUDIT).to_pandas()
    assert got.op.value_counts().to_dict() == {"U": 138, "I": 27}
    assert same_rows(got, want, [KEY, "op"])
    assert same_rows(full.read().to_pandas(), want_full.read().to_pandas(), [KEY])
