"""GitHub Actions runs what .ci/run runs (the README's test command, with a PostgreSQL server and pip's cache) and a
smoke test of the wheel on its own; what the README writes into the checkout is not shown as untracked."""

from __future__ import annotations

import os
import re
import subprocess

import yaml

from .conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def commands(script: str) -> list[str]:
    """The commands of a shell script or `run:` block: one per line, without comments and blank lines."""
    lines = (re.sub(r"\s+#.*$", "", line).strip() for line in script.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def workflow() -> dict:
    loaded = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


def runs(job: dict) -> list[str]:
    return [command for step in job["steps"] if "run" in step for command in commands(step["run"])]


def ci_environment(**variables: str) -> dict[str, str]:
    """The environment .ci/run gives ./test: its lines before `rm -rf .venv` run (that line and ./test do not),
    with `variables` added to this process's environment, less pip's own settings and GitHub's marker."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    setup, found, _ = script.partition("\nrm -rf .venv\n")
    assert found and "./test" not in commands(setup)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "GITHUB_ACTIONS"} | variables
    proc = subprocess.run(["bash", "-c", setup + "\nenv -0", str(ROOT / ".ci" / "run")], env=env, check=True,
                          capture_output=True, text=True, timeout=60)
    return dict(line.split("=", 1) for line in proc.stdout.split("\0") if "=" in line)


def test_ci_runs_the_readme_test_command_from_a_fresh_venv():
    ci = commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert ci[-2:] == ["rm -rf .venv", "./test"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    two_commands = re.search(r"## Two commands.*?```bash\n(.*?)```", readme, re.DOTALL).group(1)
    assert "./test" in commands(two_commands)


def test_the_workflow_runs_the_same_command_as_ci_on_push_and_pull_requests():
    flow = workflow()
    assert set(flow["on"]) == {"push", "pull_request"}
    test = flow["jobs"]["test"]
    assert test["strategy"]["matrix"]["python-version"] == ["3.11", "3.12"]
    assert runs(test)[-1] == "bash .ci/run"
    setup = next(step for step in test["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip" and setup["with"]["python-version"] == "${{ matrix.python-version }}"
    step = next(step for step in test["steps"] if step.get("run") == "bash .ci/run")  # bootstrap.sh takes $PYTHON
    assert step["env"]["PYTHON"] == "${{ steps." + setup["id"] + ".outputs.python-path }}"


def test_the_workflow_checks_the_import_layers_in_a_job_of_its_own():
    layers = workflow()["jobs"]["layers"]
    assert runs(layers)[-1] == "lint-imports"
    assert "import-linter" in " ".join(runs(layers))


def test_the_wheel_job_builds_it_and_runs_the_demo_from_a_fresh_venv_without_extras():
    job = workflow()["jobs"]["wheel"]
    commands_run = runs(job)
    assert "python -m pip wheel . --no-deps --wheel-dir dist" in commands_run
    assert commands_run.index('"$RUNNER_TEMP/base/bin/pip" install dist/*.whl') > \
        commands_run.index('python -m venv "$RUNNER_TEMP/base"')
    demo = [c for c in commands_run if c.startswith("base/bin/cdc-core")]
    assert demo[:4] == ["base/bin/cdc-core --version", "base/bin/cdc-core --once", "base/bin/cdc-core --once",
                        "base/bin/cdc-core verify"]
    assert (ROOT / "config.json").read_text(encoding="utf-8").count('"type": "demo"') == 1  # what the job copies
    assert any("the S3 lake needs boto3: pip install 'cdc-core[s3]'" in c for c in commands_run)


def test_the_workflow_caches_pip_downloads_keyed_by_the_dependencies():
    for job in workflow()["jobs"].values():
        setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
        assert (setup["with"]["cache"], setup["with"]["cache-dependency-path"]) == ("pip", "pyproject.toml")



def test_the_test_job_installs_the_postgresql_server_before_running_the_tests():
    test = runs(workflow()["jobs"]["test"])
    install = next(i for i, c in enumerate(test) if re.fullmatch(r"sudo apt-get install (--yes|-y) postgresql", c))
    assert test.index("sudo apt-get update") < install < test.index("bash .ci/run")


def test_pip_downloads_are_cached_on_github_because_ci_leaves_pips_cache_on_there():
    flow = workflow()  # setup-python's `cache: pip` fails its post step when pip's cache folder does not exist
    for scope in (flow, *flow["jobs"].values(), *flow["jobs"]["test"]["steps"]):
        assert "PIP_NO_CACHE_DIR" not in (scope.get("env") or {})
    assert "PIP_NO_CACHE_DIR" not in ci_environment(GITHUB_ACTIONS="true")
    assert ci_environment()["PIP_NO_CACHE_DIR"] == "1"  # elsewhere, no 460 MB pyspark wheel in ~/.cache/pip


def test_the_files_the_readme_replays_into_the_checkout_are_not_shown_as_untracked(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    outputs = sorted(set(re.findall(r"replay [^\n`]*--output ([^\s/`]+\.parquet)", readme)))
    assert outputs  # e.g. `./cdc replay --table clientes --output clientes.parquet`
    (tmp_path / ".gitignore").write_bytes((ROOT / ".gitignore").read_bytes())
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    kept = ["tests/data/produtos.parquet", "bench/results/x.parquet"]  # only the checkout root is ignored
    check = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", *outputs, *kept], capture_output=True,
                           text=True, check=False)
    assert check.stdout.split() == outputs
