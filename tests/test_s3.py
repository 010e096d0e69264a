"""The S3 lake over the real protocol: moto's server on loopback, boto3 as in production, a 503-injecting proxy."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest

from cdc_core.config import LakeConfig
from cdc_core.errors import LakeError
from cdc_core.s3lake import S3Lake

from .conftest import BUCKET, run_cli, write_config
from .fault_proxy import FaultProxy


def keys(client, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def read_parquet(client, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def shape(names: list[str]) -> list[str]:
    return sorted(re.sub(r"\d{8}_\d{6}", "RUN", k) for k in names)


def test_a_full_cycle_into_a_bucket_matches_the_local_lake_layout(s3, tmp_path: Path):
    (tmp_path / "s3").mkdir()
    (tmp_path / "local").mkdir()
    s3_config = write_config(tmp_path / "s3", lake=f"s3://{BUCKET}/loyalty/")  # a trailing slash changes nothing
    local_config = write_config(tmp_path / "local")
    for _ in range(2):
        for config in (s3_config, local_config):
            result = run_cli("--once", "--config", str(config))
            assert result.code == 0, result.out + result.err
            if config == s3_config:
                assert f"→ s3://{BUCKET}/loyalty\n" in result.out
    in_bucket = keys(s3)
    assert all(k.startswith("loyalty/") and "//" not in k for k in in_bucket)
    local_lake = tmp_path / "local" / "lake"
    on_disk = [p.relative_to(local_lake).as_posix() for p in local_lake.rglob("*")
               if p.is_file() and not p.name.startswith(".")]  # a local lake's lock files
    assert shape([k.removeprefix("loyalty/") for k in in_bucket]) == shape(on_disk)
    for table in ("clientes", "transacoes"):
        remote = read_parquet(s3, f"loyalty/full-load/{table}/{table}.parquet")
        local = pd.read_parquet(local_lake / "full-load" / table / f"{table}.parquet")
        assert remote.equals(local)
        cdc = [k for k in in_bucket if k.startswith(f"loyalty/cdc/{table}/")]
        assert len(cdc) == 1 and len(read_parquet(s3, cdc[0])) > 0
    assert run_cli("verify", "--config", str(s3_config)).code == 0
    replayed = tmp_path / "clientes.parquet"
    assert run_cli("replay", "--config", str(s3_config), "--table", "clientes", "--output", str(replayed)).code == 0
    assert len(pd.read_parquet(replayed)) == len(read_parquet(s3, "loyalty/full-load/clientes/clientes.parquet"))


def test_a_file_over_the_multipart_threshold_uploads_in_parts(s3, tmp_path: Path):
    lake = S3Lake(LakeConfig(url=f"s3://{BUCKET}/p", bucket=BUCKET, prefix="p", multipart_threshold_mb=5,
                             sse="AES256"))
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (12 * 1024 * 1024 // 256))
    seen = []
    lake.put(big, "cdc/t/t_20250101_000000.parquet", on_bytes=seen.append)
    head = s3.head_object(Bucket=BUCKET, Key="p/cdc/t/t_20250101_000000.parquet")
    assert head["ContentLength"] == big.stat().st_size and sum(seen) == big.stat().st_size
    assert re.search(r"-3\"?$", head["ETag"]), head["ETag"]  # three parts of 5 MB, 5 MB, 2 MB
    assert head["ServerSideEncryption"] == "AES256"
    assert lake.list("cdc/") == ["cdc/t/t_20250101_000000.parquet"]


def test_retries_ride_out_503s(s3, tmp_path: Path, monkeypatch):
    upstream = s3.meta.endpoint_url.removeprefix("http://").split(":")

    def every_other_put(method: str, path: str, n: int) -> bool:
        return method == "PUT" and n % 2 == 1

    with FaultProxy((upstream[0], int(upstream[1])), every_other_put) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        config = write_config(tmp_path, lake=f"s3://{BUCKET}/retry")
        for _ in range(2):
            result = run_cli("--once", "--config", str(config))
            assert result.code == 0, result.out + result.err
        assert proxy.failed >= 5
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.meta.endpoint_url)
    assert run_cli("verify", "--config", str(config)).code == 0


def test_an_outage_keeps_the_outbox_and_the_next_cycle_drains_it(s3, tmp_path: Path, monkeypatch):
    upstream = s3.meta.endpoint_url.removeprefix("http://").split(":")
    outage = {"on": False}
    with FaultProxy((upstream[0], int(upstream[1])), lambda method, path, n: outage["on"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        config = write_config(tmp_path, lake=f"s3://{BUCKET}/outage", aws={"max_attempts": 2})
        assert run_cli("--once", "--config", str(config)).code == 0
        outage["on"] = True
        down = run_cli("--once", "--config", str(config))
        assert down.code == 1
        assert 'Table "clientes": run ' in down.out and "stays in the outbox" in down.out
        assert "testing-secret-value" not in down.out + down.err
        outage["on"] = False
        up = run_cli("--once", "--config", str(config))
        assert up.code == 0, up.out + up.err
        assert "also published pending runs" in up.out
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.meta.endpoint_url)
    assert len(keys(s3, "outage/cdc/clientes/")) == 2
    assert run_cli("verify", "--config", str(config)).code == 0


def test_clear_errors_for_a_missing_bucket_and_missing_credentials(s3, tmp_path: Path, monkeypatch):
    lake = S3Lake(LakeConfig(url="s3://no-such-bucket", bucket="no-such-bucket", max_attempts=1))
    (tmp_path / "f").write_text("x")
    with pytest.raises(LakeError, match="the bucket no-such-bucket does not exist — create it or fix"):
        lake.put(tmp_path / "f", "k")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(LakeError, match="no AWS credentials found — set AWS_ACCESS_KEY_ID"):
        S3Lake(LakeConfig(url=f"s3://{BUCKET}", bucket=BUCKET, max_attempts=1)).put(tmp_path / "f", "k")


def test_dry_run_lists_the_uploads_and_changes_nothing(s3, tmp_path: Path):
    config = write_config(tmp_path, lake=f"s3://{BUCKET}/dry")
    assert run_cli("--once", "--config", str(config)).code == 0
    before = keys(s3)
    state = (tmp_path / "data" / "state" / "clientes.json").read_text()
    preview = run_cli("--dry-run", "--config", str(config))
    assert preview.code == 0, preview.err
    assert "dry run: nothing uploaded or committed" in preview.out
    planned = re.findall(r"would upload (cdc/clientes/clientes_\d{8}_\d{6}\.parquet)\s+([\d,]+) rows\s+([\d,]+) bytes",
                         preview.out)
    assert len(planned) == 1
    assert keys(s3) == before and (tmp_path / "data" / "state" / "clientes.json").read_text() == state
    real = run_cli("--once", "--config", str(config))
    counts = re.search(r"clientes\s+changes\s+I\s+(\d+)\s+U\s+(\d+)\s+D\s+(\d+)", real.out).groups()
    assert sum(map(int, counts)) == int(planned[0][1].replace(",", ""))
