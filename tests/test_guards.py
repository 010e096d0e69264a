"""Guards: a mass deletion never reaches the lake without a person saying yes; data-quality numbers per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdc_core import load_config, run_once
from cdc_core.lake import LocalLake, read_manifests

from .conftest import run_cli, write_config
from .test_notify import PASSWORD, Mailbox, mailto, smtp, text  # noqa: F401  (the smtp fixture)

DATA = Path(__file__).parent / "data"
CLIENTES = {"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"}


def half_deleted() -> str:
    lines = (DATA / "clientes_20250922.csv").read_text().splitlines(keepends=True)
    return "".join(lines[:1] + lines[1::3])  # two rows of every three gone


def keys(text: str) -> set[str]:
    return {line.split(";", 1)[0] for line in text.splitlines()[1:]}


GONE = len(keys((DATA / "clientes_20250918.csv").read_text()) - keys(half_deleted()))


def setup(tmp_path: Path, **overrides) -> Path:
    (tmp_path / "source").mkdir(parents=True)
    (tmp_path / "source" / "clientes.csv").write_text((DATA / "clientes_20250918.csv").read_text())
    config = write_config(tmp_path, **{"source": {"type": "directory", "path": "source"}, "tables": [CLIENTES],
                                       **overrides})
    assert run_cli("--once", "--config", str(config)).code == 0
    (tmp_path / "source" / "clientes.csv").write_text(half_deleted())
    return config


def test_half_the_rows_deleted_is_held_then_published_when_accepted(tmp_path: Path, smtp: Mailbox):  # noqa: F811
    (tmp_path / ".env").write_text(f"SMTP_PASSWORD='{PASSWORD}'\n")
    config = setup(tmp_path, notify=[{"url": mailto(smtp.port, "ops@example.com"), "on": ["held", "changes"]}])
    smtp.take()
    lake = LocalLake(tmp_path / "lake")
    before = json.loads((tmp_path / "data/state/clientes.json").read_text())

    held = run_cli("--once", "--config", str(config))
    assert held.code == 1
    assert (f'HELD: Table "clientes": held — {GONE:,} of 3,837 rows deleted ({GONE / 3837:.0%}), more than '
            "max_delete_ratio 0.5") in held.out
    assert "publish with --accept-held clientes" in held.out
    assert len(read_manifests(lake, "clientes")) == 1 and not (tmp_path / "lake/cdc").exists()
    assert json.loads((tmp_path / "data/state/clientes.json").read_text()) == before
    [mail] = smtp.take()
    assert "held for confirmation: clientes" in mail["Subject"] and "--accept-held clientes" in text(mail)

    lines = half_deleted().splitlines(keepends=True)
    (tmp_path / "source" / "clientes.csv").write_text("".join(lines[:2]))  # meanwhile the source lost nearly all
    accepted = run_cli("--once", "--accept-held", "clientes", "--config", str(config))
    assert accepted.code == 0, accepted.out + accepted.err
    runs = read_manifests(lake, "clientes")  # what was held and seen is published, not the newer file
    assert len(runs) == 2 and runs[1]["counts"]["D"] == GONE
    assert runs[1]["rows"] == len(keys(half_deleted()))
    assert run_cli("verify", "--config", str(config)).code == 0
    again = run_cli("--once", "--accept-held", "clientes", "--config", str(config))  # nothing held now: guarded
    assert again.code == 1 and "HELD" in again.out and "more than max_delete_ratio 0.5" in again.out
    assert len(read_manifests(lake, "clientes")) == 2


def test_a_held_preview_is_published_only_when_accepted(tmp_path: Path):
    config = load_config(setup(tmp_path))
    preview = run_once(config, dry_run=True)
    assert preview.tables[0].status == "held" and "more than max_delete_ratio" in preview.tables[0].error
    refused = run_once(config, publish_preview=preview.run_id)
    assert refused.tables[0].status == "held"
    assert len(read_manifests(LocalLake(tmp_path / "lake"), "clientes")) == 1
    published = run_once(config, publish_preview=preview.run_id, accept_held=["clientes"])
    assert published.tables[0].status == "changes" and published.tables[0].counts["D"] == GONE


def test_guards_per_table_override_the_defaults(tmp_path: Path):
    config = setup(tmp_path, guards={"max_delete_ratio": 0.9},
                   tables=[{**CLIENTES, "guards": {"min_rows": 2000}}])
    result = run_cli("--once", "--config", str(config))
    assert result.code == 1 and f"{len(keys(half_deleted())):,} rows, fewer than min_rows 2,000" in result.out
    config = setup(tmp_path / "off", tables=[{**CLIENTES, "guards": {"max_delete_ratio": None}}])
    assert run_cli("--once", "--config", str(config)).code == 0


def test_each_run_records_data_quality_per_column(tmp_path: Path):
    config = setup(tmp_path, guards={"max_delete_ratio": None})
    assert run_cli("--once", "--config", str(config)).code == 0
    first, second = read_manifests(LocalLake(tmp_path / "lake"), "clientes")
    points = first["quality"]["qtdePontos"]
    assert points["nulls"] == 0 and points["min"] == "0" and first["quality"]["idCliente"]["distinct"] == 3837
    assert second["quality"]["idCliente"]["distinct"] < first["quality"]["idCliente"]["distinct"]
    assert set(first["quality"]) == set(first["columns"])
    from cdc_core import explore

    over_time = explore.quality(LocalLake(tmp_path / "lake"), "clientes")
    keys_per_run = over_time[over_time["column"] == "idCliente"][["run_id", "distinct", "nulls"]].values.tolist()
    assert keys_per_run == [[first["run_id"], first["rows"], 0], [second["run_id"], second["rows"], 0]]


@pytest.mark.parametrize("guards, message", [
    ({"max_delete_ratio": 2}, '"guards.max_delete_ratio" is 2 — use a ratio from 0 to 1, like 0.2 (20 %)'),
    ({"max_change_ratio": -0.1}, '"guards.max_change_ratio" is -0.1 — use a ratio like 0.2 (20 %)'),
    ({"min_rows": 2.5}, '"guards.min_rows" is 2.5 — use a whole number of rows'),
])
def test_a_guard_that_cannot_mean_anything_is_a_config_error(tmp_path: Path, guards: dict, message: str):
    write_config(tmp_path, guards=guards)
    result = run_cli("--once", cwd=tmp_path)
    assert result.code == 2 and message in result.err and not (tmp_path / "lake").exists(), result.err


def test_publish_takes_a_run_id(tmp_path: Path):
    write_config(tmp_path)
    result = run_cli("--publish", "garbage", cwd=tmp_path)
    assert result.code == 2 and "--publish takes the run id a dry run printed" in result.err
