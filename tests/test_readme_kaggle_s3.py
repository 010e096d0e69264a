"""The README's "Kaggle and S3" section, followed step by step against the fake Kaggle and moto's S3."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cdc_core.cli import main
from cdc_core.sources.demo import TABLES, DemoSource

from .conftest import ROOT
from .fake_kaggle import FakeKaggle, route_client

SECTION = (ROOT / "README.md").read_text().split("## Kaggle and S3", 1)[1].split("\n## ", 1)[0]
USER, KEY = "your-kaggle-user", "0123456789abcdef0123456789abcdef"  # the README's own example values


def block(language: str) -> str:
    """The first fenced block of `language` in the section."""
    found = re.search(rf"```{language}\n(.*?)```", SECTION, re.DOTALL)
    assert found, f"the README's Kaggle and S3 section has no {language} block"
    return "\n".join(line.strip() for line in found.group(1).splitlines())


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_the_readme_walkthrough_captures_the_dataset_into_the_bucket(s3, tmp_path: Path, monkeypatch, capsys):
    config = json.loads(block("json"))
    dataset, bucket = config["dataset_name"], config["aws"]["bucket"]
    demo = DemoSource(seed=5, scale=0.05)
    files = {v: {f"{n}.csv": demo.write(n, v, tmp_path / f"{n}_{v}.csv").read_bytes() for n in TABLES}
             for v in (1, 2)}
    for version_files in files.values():
        version_files["database.db"] = b"SQLite format 3\x00" + bytes(4096)

    # Step 1: credentials in .env next to config.json, not in the environment.
    env_lines = [line for line in block("bash").splitlines() if "=" in line and not line.startswith("#")]
    values = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret-value"}
    dotenv = "\n".join(f"{k}={values.get(k, v)}" for k, v in (line.split("=", 1) for line in env_lines))
    (tmp_path / ".env").write_text(dotenv + "\n")
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "placeholder")  # so that teardown restores what .env loading sets
        monkeypatch.delenv(name)
    # Step 2: the config exactly as the README shows it.
    (tmp_path / "config.json").write_text(json.dumps(config))
    path = str(tmp_path / "config.json")

    with FakeKaggle({dataset: files}, users={USER: KEY}) as kaggle:
        route_client(kaggle, monkeypatch, tmp_path / "home")
        kaggle.current[dataset] = 1
        # Step 3: look before writing, then capture, then verify.
        code, out = cli(capsys, "--dry-run", "--config", path)
        assert code == 0, out
        assert "dry run: nothing uploaded or committed" in out and "would upload full-load/clientes/" in out
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
        code, out = cli(capsys, "--once", "--config", path)
        assert code == 0, out
        assert out.count("full load") == 4 and f"→ s3://{bucket}/loyalty" in out
        code, out = cli(capsys, "verify", "--config", path)
        assert code == 0 and "4 of 4 table(s) verified" in out

        kaggle.current[dataset] = 2  # Kaggle publishes a new version
        code, out = cli(capsys, "--once", "--config", path)
        assert code == 0, out
        assert re.search(r"clientes\s+changes", out)
        code, out = cli(capsys, "--once", "--config", path)  # no new version: nothing downloaded
        assert code == 0 and out.count("skipped: the source has no new version") == 4
        assert not [d for d in kaggle.downloads if d[0] == "database.db"]

    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="loyalty/cdc/")["Contents"]]
    assert sorted(k.split("/")[2] for k in listed) == ["clientes", "transacao_produto", "transacoes"]
    assert USER not in out and KEY not in out and "testing-secret-value" not in out
