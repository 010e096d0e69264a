"""The wheel: only cdc packages, its scripts, styles and types; the base install runs the demo, diff, replay and
verify on its own; every optional feature used without its extra is one line naming the extra (exit 2)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cdc_core.engines import CONNECT_EXTRA, KNOWN_ENGINES
from cdc_core.extras import FEATURES
from cdc_core.formats import KNOWN_FORMATS

from .conftest import DEMO_TABLES, ROOT
from .venvs import base_requirements, dependencies, fresh_venv

BASE = {"duckdb", "pyarrow", "numpy", "python-dotenv"}
DATA = ROOT / "tests" / "data"


def names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, normalised (PEP 503)."""
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", r).group()).lower() for r in requirements}


def extras_of(wheel: Path) -> dict[str, set[str]]:
    """extra -> the distributions it brings (another extra of ours stays as `cdc-core[...]`)."""
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    extras: dict[str, set[str]] = {}
    pattern = re.compile(r'^Requires-Dist: (.+); extra == "([^"]+)"$', re.MULTILINE)
    for requirement, extra in pattern.findall(metadata):
        extras.setdefault(extra, set()).add(requirement if requirement.startswith("cdc_core[")
                                            else names([requirement]).pop())
    return extras


# --- the wheel itself -----------------------------------------------------------------------------------------

def test_the_wheel_holds_cdc_packages_with_their_scripts_styles_and_types(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
        entry_points = z.read(next(n for n in files if n.endswith("entry_points.txt"))).decode()
    assert {name.split("/")[0] for name in files} == {"cdc_core", "cdc_tui", f"{wheel.name.split('-py')[0]}.dist-info"}
    for folder, package in (("cdc_core", "cdc_core"), ("tui", "cdc_tui")):  # every module, none left behind
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".tcss", ".typed") and "__pycache__" not in path.parts:
                assert f"{package}/{path.relative_to(ROOT / folder).as_posix()}" in files
    assert {"cdc_core/py.typed", "cdc_tui/app.tcss"} <= files
    assert "cdc-core = cdc_core.cli:main" in entry_points and "cdc-tui = cdc_tui:main" in entry_points


def test_the_base_install_is_the_core_only(wheel: Path):
    assert names(base_requirements(wheel)) == BASE


def test_every_extra_named_in_a_message_installs_what_the_feature_needs(wheel: Path):
    extras = extras_of(wheel)
    needs = [(extra, module) for extra, modules in FEATURES.values() for module in modules]
    needs += [(extra, library) for _, library, extra, _ in KNOWN_FORMATS.values()]
    needs += [(extra, library) for _, library, extra in KNOWN_ENGINES.values() if extra]
    needs += [(CONNECT_EXTRA, "pyspark")]  # a Spark engine with a `remote`
    for extra, module in needs:
        assert names([module]) <= extras[extra], f"cdc-core[{extra}] does not install {module}"
    everything = {e for e in extras if e not in ("all", "test")}
    assert extras["all"] == {f"cdc_core[{','.join(sorted(everything))}]"}
    assert "cdc_core[all]" in extras["test"]


# --- a fresh venv with the wheel and nothing else -------------------------------------------------------------

OPTIONAL = sorted({m for _, modules in FEATURES.values() for m in modules} | {"rich", "deltalake", "pyiceberg",
                                                                               "pyspark", "marimo"})


@pytest.fixture(scope="module")
def base(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel and its base dependencies only; returns its bin folder."""
    deps = dependencies("base", base_requirements(wheel))
    return fresh_venv(tmp_path_factory.mktemp("base") / "venv", deps, wheel) / "bin"


def cli(bin_dir: Path, *args: str, cwd: Path, script: str = "cdc-core") -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / script), *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                          check=False, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def on_a_terminal(bin_dir: Path, *args: str, cwd: Path) -> tuple[int, str, str]:
    """Run cdc-core with stderr on a pseudo-terminal (where progress bars would be drawn); (code, stdout, stderr)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(bin_dir / "cdc-core"), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=terminal,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    os.close(terminal)
    err = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        err += chunk
    os.close(controller)
    out = proc.communicate(timeout=180)[0]
    return proc.returncode, out.decode(), err.decode(errors="replace")


def write(folder: Path, **changes) -> Path:
    """The demo config (small scale) with `changes`; a value of None removes the key."""
    config = {"source": {"type": "demo", "seed": 7, "scale": 0.2}, "lake": "lake", "data_dir": "data",
              "tables": DEMO_TABLES, **changes}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return path


def test_no_optional_library_is_installed_in_the_base_venv(base: Path):
    probe = "import importlib.util, sys; print([m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
    found = subprocess.run([str(base / "python"), "-c", probe, *OPTIONAL], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found == "[]"  # else the tests below would not show what a base install does


def test_the_base_install_captures_the_demo_twice_and_verifies(base: Path, tmp_path: Path):
    write(tmp_path)
    code, out, err = on_a_terminal(base, "--once", cwd=tmp_path)  # a user at a terminal, no rich: no bars, no error
    assert code == 0, out + err
    assert "Traceback" not in err
    assert all(re.search(rf"^  {t['name']}\s+full load", out, re.MULTILINE) for t in DEMO_TABLES), out
    second = cli(base, "--once", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    changes = re.compile(r"^  clientes\s+changes\s+I\s+\d+\s+U\s+\d+\s+D\s+\d+", re.MULTILINE)
    assert changes.search(second.stdout), second.stdout
    checked = cli(base, "verify", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 of 4 table(s) verified" in checked.stdout
    replayed = cli(base, "replay", "--table", "clientes", "--output", "clientes.parquet", cwd=tmp_path)
    assert replayed.returncode == 0 and (tmp_path / "clientes.parquet").exists(), replayed.stderr


def test_the_base_install_diffs_two_files(base: Path, tmp_path: Path):
    result = cli(base, "diff", str(DATA / "clientes_20250918.csv"), str(DATA / "clientes_20250922.csv"),
                 "--key", "idCliente", "--sep", ";", "--output", "changes.parquet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.match(r"I [\d,]+  U [\d,]+  D [\d,]+  → changes.parquet", result.stdout)
    assert (tmp_path / "changes.parquet").stat().st_size > 0


def test_version_comes_from_the_installed_distribution(base: Path, tmp_path: Path, wheel: Path):
    version = wheel.name.split("-")[1]
    assert cli(base, "--version", cwd=tmp_path).stdout == f"cdc-core {version}\n"
    module = subprocess.run([str(base / "python"), "-m", "cdc_core", "--version"], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    assert module.stdout == f"cdc-core {version}\n"


def test_every_core_module_imports_without_its_optional_libraries(base: Path, tmp_path: Path):
    probe = """
import importlib, json, pkgutil, cdc_core
from cdc_core.errors import ConfigError
failed = {}
for module in pkgutil.walk_packages(cdc_core.__path__, "cdc_core."):
    if module.name == "cdc_core.__main__":  # runs the CLI
        continue
    try:
        importlib.import_module(module.name)
    except ConfigError as exc:
        failed[module.name] = str(exc)
    except ImportError as exc:
        failed[module.name] = f"ImportError: {exc}"
print(json.dumps(failed))
"""
    failed = json.loads(subprocess.run([str(base / "python"), "-c", probe], capture_output=True, text=True,
                                       cwd=tmp_path, timeout=120, check=True).stdout)
    # cdc_core.explore is the notebooks' module: it needs pandas, and says so; the Spark engine's inner modules
    # import pyspark at once, and are only reached through `engines.engine_class`, which names the extra first
    inner = {name for name in failed if name.startswith("cdc_core.engines.spark.")}
    assert inner == {"cdc_core.engines.spark.compare", "cdc_core.engines.spark.snapshot",
                     "cdc_core.engines.spark.types"}
    assert all(failed.pop(name).startswith("ImportError: No module named '") for name in inner)
    assert failed == {"cdc_core.explore": "cdc_core.explore needs pandas: pip install 'cdc-core[notebooks]'"}


S3_LAKE = "the S3 lake needs boto3: pip install 'cdc-core[s3]'"
MISSING = [  # (what the config uses, its changes, the command, the one line a user gets)
    ("S3 lake", {"lake": "s3://lake-bucket/cdc"}, ["--once"], S3_LAKE),
    ("S3 lake, dry run", {"lake": "s3://lake-bucket/cdc"}, ["--dry-run"], S3_LAKE),
    ("S3 lake, timed loop", {"lake": "s3://lake-bucket/cdc"}, ["-q"], S3_LAKE),  # stops: no later tick does better
    ("delta, timed loop", {"table_format": "delta"}, ["-q"],
     "the Delta table format needs deltalake: pip install 'cdc-core[delta]'"),
    ("S3 lake, verify", {"lake": "s3://lake-bucket/cdc"}, ["verify"], S3_LAKE),
    ("S3 lake, replay", {"lake": "s3://lake-bucket/cdc"}, ["replay", "--table", "clientes", "--output", "x.parquet"],
     S3_LAKE),
    ("the seed's aws block", {"lake": None, "aws": {"bucket": "my-data-lake", "region": "us-east-1"}}, ["--once"],
     S3_LAKE),
    ("kaggle source", {"source": {"type": "kaggle", "dataset": "teocalvo/teomewhy-loyalty-system"}}, ["--once"],
     "the kaggle source needs kaggle: pip install 'cdc-core[kaggle]'"),
    ("the seed's dataset_name", {"source": None, "dataset_name": "teocalvo/teomewhy-loyalty-system"}, ["--once"],
     "the kaggle source needs kaggle: pip install 'cdc-core[kaggle]'"),
    ("http source", {"source": {"type": "http", "url": "http://127.0.0.1:9/{table}.csv"}}, ["--once"],
     "the http source needs requests: pip install 'cdc-core[http]'"),
    ("s3 source", {"source": {"type": "s3", "url": "s3://drop-bucket/in"}}, ["--once"],
     "the s3 source needs boto3: pip install 'cdc-core[s3]'"),
    ("postgres source", {"source": {"type": "postgres", "dsn": "postgresql://etl@127.0.0.1:9/erp"}}, ["--once"],
     "the postgres source needs adbc_driver_postgresql: pip install 'cdc-core[postgres]'"),
    ("notify", {"notify": [{"url": "mailto://ops:secret@example.com", "on": ["failure"]}]}, ["--once"],
     "sending notifications needs apprise: pip install 'cdc-core[notify]'"),
    ("metrics", {"metrics": {"port": 9108}}, ["--once"],
     "exporting Prometheus metrics needs prometheus_client: pip install 'cdc-core[metrics]'"),
    ("delta", {"table_format": "delta"}, ["--once"],
     "the Delta table format needs deltalake: pip install 'cdc-core[delta]'"),
    ("iceberg", {"table_format": "iceberg"}, ["--once"],
     "the Iceberg table format needs pyiceberg: pip install 'cdc-core[iceberg]'"),
    ("spark", {"engine": {"type": "spark", "master": "local[1]"}}, ["--once"],
     "the spark engine needs pyspark: pip install 'cdc-core[spark]'"),
    ("spark, diff", {}, ["diff", str(DATA / "clientes_20250918.csv"), str(DATA / "clientes_20250922.csv"), "--key",
                         "idCliente", "--sep", ";", "--output", "changes.parquet", "--engine", "spark"],
     "the spark engine needs pyspark: pip install 'cdc-core[spark]'"),
    ("spark connect", {"engine": {"type": "spark", "remote": "sc://127.0.0.1:15002"}}, ["--once"],
     "the Spark Connect engine needs pyspark: pip install 'cdc-core[spark-connect]'"),
]


@pytest.mark.parametrize(("changes", "command", "message"), [case[1:] for case in MISSING],
                         ids=[case[0] for case in MISSING])
def test_a_feature_without_its_extra_is_one_line_naming_it(base: Path, tmp_path: Path, changes, command, message):
    write(tmp_path, **changes)
    result = cli(base, *command, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, f"Error: {message}\n"), result.stdout
    assert not (tmp_path / "lake").exists()


def test_the_terminal_app_without_its_extra_is_one_line(base: Path, tmp_path: Path):
    result = cli(base, "--config", str(write(tmp_path)), cwd=tmp_path, script="cdc-tui")
    assert (result.returncode, result.stderr) == (2, "Error: cdc-tui needs textual: pip install 'cdc-core[tui]'\n")


def test_the_notebooks_module_without_its_extra_names_it(base: Path):
    result = subprocess.run([str(base / "python"), "-c", "from cdc_core import explore"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 1 and "ImportError" not in result.stderr
    assert result.stderr.splitlines()[-1] == \
        "cdc_core.errors.ConfigError: cdc_core.explore needs pandas: pip install 'cdc-core[notebooks]'"


def test_the_dev_venv_maps_the_tui_folder_to_cdc_tui():
    """`pip install -e .` (what ./test does) serves tui/ as cdc_tui, as the wheel installs it."""
    found = subprocess.run([sys.executable, "-c", "import cdc_tui.app; print(cdc_tui.app.__file__)"], cwd="/",
                           capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": ""})
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == ROOT / "tui" / "app.py"
