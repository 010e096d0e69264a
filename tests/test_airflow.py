"""The Airflow DAG (deploy/airflow/cdc_core_dag.py) on a real Airflow 3 with its SQLite metadata database.

`airflow dags test` runs the DAG the way a scheduler would (trigger rules, mapped tasks, XComs), in one process.
Airflow and the project's base dependencies live in a cached venv (tests/venvs.py); the wheel built from this
checkout is installed into a fresh venv on top of it, so the DAG runs the cdc_core a user would deploy.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cdc_core import load_config, run_once, verify
from cdc_core.lake import make_lake, read_manifests

from .conftest import DEMO_TABLES, ROOT
from .venvs import base_requirements, dependencies, fresh_venv, run

AIRFLOW = "apache-airflow>=3.3,<3.4"
DAG_FILE = ROOT / "deploy" / "airflow" / "cdc_core_dag.py"
DATA = ROOT / "tests" / "data"


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow whose home (config, SQLite database, DAGs folder) is `home`."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CDC_")) and k != "PYTHONPATH"}
    return {**keep, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}", **extra}


class Airflow:
    """`python -m airflow` in a venv with Airflow and the wheel, on a copy of a migrated metadata database."""

    def __init__(self, python: Path, migrated: Path, home: Path):
        self.python, self.home = python, home
        (home / "dags").mkdir(parents=True)
        shutil.copy2(migrated, home / "airflow.db")
        shutil.copy2(DAG_FILE, home / "dags")

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), "-m", "airflow", *args], env=airflow_env(self.home, **env), cwd=self.home,
                              capture_output=True, text=True, timeout=600, check=False)

    def runs(self) -> list[tuple[str, dict[str, str]]]:
        """Every DAG run, oldest first: (its state, {task (with the table of a capture): state})."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            runs = db.execute("SELECT run_id, state FROM dag_run ORDER BY id").fetchall()
            found = []
            for run_id, state in runs:
                rows = db.execute("SELECT task_id, rendered_map_index, state FROM task_instance WHERE run_id = ?",
                                  (run_id,)).fetchall()
                found.append((state, {f"{task}[{index}]" if index else task: ti for task, index, ti in rows}))
        return found


@pytest.fixture(scope="module")
def migrated(wheel: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(the python of a fresh venv with Airflow and the wheel, an `airflow db migrate`d SQLite database)."""
    folder = tmp_path_factory.mktemp("airflow")
    deps = dependencies("airflow", [AIRFLOW, *base_requirements(wheel)])
    python = fresh_venv(folder / "venv", deps, wheel) / "bin" / "python"
    home = folder / "template"
    run([str(python), "-m", "airflow", "db", "migrate"], env=airflow_env(home))
    return python, home / "airflow.db"


@pytest.fixture
def airflow(migrated, tmp_path: Path) -> Airflow:
    return Airflow(migrated[0], migrated[1], tmp_path / "airflow")


def captures(tables: list[str], state: str) -> dict[str, str]:
    return {f"capture[{t}]": state for t in tables}


def test_the_dag_captures_every_table_of_the_demo_and_verifies(airflow: Airflow, tmp_path: Path):
    config = tmp_path / "work" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"source": {"type": "demo", "seed": 7, "scale": 0.2}, "lake": "lake",
                                  "data_dir": "data", "tables": DEMO_TABLES}))
    assert airflow("variables", "set", "cdc_core_config", str(config)).returncode == 0  # the config's path
    result = airflow("dags", "test", "cdc_core")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = [t["name"] for t in DEMO_TABLES]
    assert airflow.runs() == [("success", {"tables": "success", **captures(names, "success"), "verify": "success",
                                           "all_captured": "skipped"})]
    loaded = load_config(config)
    lake = make_lake(loaded.lake)
    assert all(len(read_manifests(lake, t)) == 1 for t in names)  # a manifest for every table
    assert all(check.ok for check in verify(loaded))


def test_failed_and_held_tables_fail_their_tasks_and_the_run_verify_still_checks_and_a_param_accepts(
        airflow: Airflow, tmp_path: Path):
    work, inbox = tmp_path / "work", tmp_path / "work" / "in"
    inbox.mkdir(parents=True)
    config = work / "config.json"
    config.write_text(json.dumps({"source": {"type": "directory", "path": "in"}, "lake": "lake", "data_dir": "data",
                                  "tables": [{"name": "clientes", "pk": "idCliente", "sep": ";"},
                                             {"name": "produtos", "pk": "IdProduto", "sep": ";"},
                                             {"name": "catalogo", "pk": "IdProduto", "sep": ";"}]}))
    clientes = (DATA / "clientes_20250918.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    produtos = (DATA / "produtos_41.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    catalogo = (DATA / "produtos_118.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    for name, lines in (("clientes", clientes), ("produtos", produtos), ("catalogo", catalogo)):
        (inbox / f"{name}.csv").write_text("".join(lines), encoding="utf-8")
    loaded = load_config(config)
    assert run_once(loaded).ok  # captured by the CLI's cron job so far; Airflow takes over

    (inbox / "clientes.csv").write_text("".join(clientes[:1] + clientes[1::3]), encoding="utf-8")  # 2/3 deleted
    (inbox / "produtos.csv").write_text("".join([*produtos, produtos[1]]), encoding="utf-8")  # a duplicate key
    (inbox / "catalogo.csv").write_text("".join(catalogo[:-10]), encoding="utf-8")  # 10 rows deleted
    result = airflow("dags", "test", "cdc_core", CDC_CONFIG=str(config))  # the config from the environment
    assert result.returncode != 0
    assert "appear more than once" in result.stderr and "max_delete_ratio" in result.stderr  # in the task logs
    assert airflow.runs() == [("failed", {"tables": "success", "capture[clientes]": "failed",
                                          "capture[produtos]": "failed", "capture[catalogo]": "success",
                                          "verify": "success", "all_captured": "failed"})]
    lake = make_lake(loaded.lake)
    manifests = {t.name: len(read_manifests(lake, t.name)) for t in loaded.tables}
    assert manifests == {"clientes": 1, "produtos": 1, "catalogo": 2}  # the failed and held ones stayed as they were
    assert all(check.ok for check in verify(loaded))

    (inbox / "produtos.csv").write_text("".join(produtos), encoding="utf-8")  # fixed
    accepted = airflow("dags", "test", "cdc_core", "--conf", json.dumps({"accept_held": ["clientes"]}),
                       CDC_CONFIG=str(config))
    assert accepted.returncode == 0, accepted.stdout[-3000:] + accepted.stderr[-3000:]
    assert airflow.runs()[1] == ("success", {"tables": "success", **captures(["clientes", "produtos", "catalogo"],
                                                                             "success"),
                                             "verify": "success", "all_captured": "skipped"})
    assert len(read_manifests(lake, "clientes")) == 2  # the held capture is published
    assert all(check.ok for check in verify(loaded))


def test_parsing_the_dag_file_reads_no_config_and_imports_no_cdc_core(migrated, tmp_path: Path):
    """The DAG processor parses the file often, maybe on another machine: it needs Airflow only."""
    probe = ("import runpy, sys; dag = runpy.run_path(sys.argv[1])['cdc_core_dag']; "
             "print(sorted(t.task_id for t in dag().tasks), 'cdc_core' in sys.modules)")
    python = migrated[0]
    result = subprocess.run([str(python), "-c", probe, str(DAG_FILE)], capture_output=True, text=True, timeout=120,
                            check=False, env=airflow_env(tmp_path, CDC_CONFIG=str(tmp_path / "missing.json")))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "['all_captured', 'capture', 'tables', 'verify'] False"
