"""The s3 source against moto's S3 server: ETag versions, skips, file types, and one-line failures."""

from __future__ import annotations

import gzip
import io
import uuid
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cdc_core import run_once
from cdc_core.config import TableConfig, parse_config
from cdc_core.errors import SourceError
from cdc_core.sources import make_source, versions

from .clientes_db import KEY, V1, V2
from .conftest import BUCKET, run_cli, write_config

DATA = Path(__file__).resolve().parent / "data"
TABLES = [{"name": "clientes", "pk": KEY, "sep": ";"}, {"name": "produtos", "pk": "IdProduto", "sep": ";"}]


@pytest.fixture
def drop() -> str:
    """A fresh folder in the bucket (moto keeps objects across its servers within one test process)."""
    return f"drop-{uuid.uuid4().hex[:8]}"


def config(folder: Path, url: str, tables: list[dict] = TABLES, **source):
    return parse_config({"source": {"type": "s3", "url": url, **source}, "lake": "lake", "data_dir": "data",
                         "tables": tables}, base_dir=folder)


def test_unchanged_objects_skip_the_cycle_and_a_new_object_is_captured(s3, drop: str, tmp_path: Path):
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/clientes.csv", Body=V1.read_bytes())
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/produtos.csv", Body=(DATA / "produtos_41.csv").read_bytes())
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/old/clientes.csv", Body=b"not this one")
    path = write_config(tmp_path, source={"type": "s3", "url": f"s3://{BUCKET}/{drop}"}, tables=TABLES)
    first = run_cli("--once", "--config", str(path))
    assert first.code == 0, first.err
    etags = {name: s3.head_object(Bucket=BUCKET, Key=f"{drop}/{name}")["ETag"].strip('"')
             for name in ("clientes.csv", "produtos.csv")}
    assert f"version {versions.encode(etags)} →" in first.out  # the objects' ETags are the version
    second = run_cli("--once", "--config", str(path))
    assert second.code == 0 and "nothing to capture" in second.err + second.out
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/clientes.csv", Body=V2.read_bytes())
    third = run_cli("--once", "--config", str(path))
    assert third.code == 0, third.err
    assert "I     27  U    138  D      0" in third.out and "produtos  no changes" in third.out


def test_gzip_and_parquet_objects_are_read(s3, drop: str, tmp_path: Path):
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/clientes.csv.gz", Body=gzip.compress(V1.read_bytes()))
    buffer = io.BytesIO()
    pq.write_table(pacsv.read_csv(DATA / "produtos_118.csv", parse_options=pacsv.ParseOptions(delimiter=";")),
                   buffer)
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/produtos.parquet", Body=buffer.getvalue())
    report = run_once(config(tmp_path, f"s3://{BUCKET}/{drop}/"))
    assert report.ok and [t.rows for t in report.tables] == [3837, 118]


def test_a_missing_object_fails_its_table_and_names_what_is_there(s3, drop: str, tmp_path: Path):
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/clientes.csv", Body=V1.read_bytes())
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/Produtos.CSV", Body=b"x")
    report = run_once(config(tmp_path, f"s3://{BUCKET}/{drop}/"))
    assert [t.status for t in report.tables] == ["full_load", "failed"]
    assert report.tables[1].error == (
        f'Table "produtos": s3://{BUCKET}/{drop}/ has no produtos.csv (nor .csv.gz, .parquet; it holds: Produtos.CSV, '
        'clientes.csv) — upload the file or fix the table\'s "name" or "source.url"')


def test_a_missing_bucket_or_missing_credentials_fail_the_cycle_in_one_line(s3, drop: str, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    tables = [TableConfig("clientes", (KEY,))]
    with pytest.raises(SourceError, match=r"^Cannot list s3://no-such-bucket/drop/: the bucket no-such-bucket does "
                                          r'not exist — fix "source.url"$'):
        make_source(config(tmp_path, "s3://no-such-bucket/drop").source).fetch(tables, tmp_path, last_version=None)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    path = write_config(tmp_path, source={"type": "s3", "url": f"s3://{BUCKET}/{drop}/"}, tables=TABLES[:1])
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1 and "no AWS credentials found" in result.out and "Traceback" not in result.err


def test_the_drop_folder_may_name_its_own_endpoint(s3, drop: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    s3.put_object(Bucket=BUCKET, Key=f"{drop}/clientes.csv", Body=V1.read_bytes())
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    cfg = config(tmp_path, f"s3://{BUCKET}/{drop}", tables=TABLES[:1], endpoint_url=s3.meta.endpoint_url,
                 region="us-east-1")
    assert cfg.source.s3.endpoint_url == s3.meta.endpoint_url
    assert run_once(cfg).ok
