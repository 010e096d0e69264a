"""GitHub Actions runs what .ci/run runs (the README's test command) and a smoke test of the wheel on its own."""

from __future__ import annotations

import re

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
    assert runs(test) == ["bash .ci/run"]
    setup = next(step for step in test["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip" and setup["with"]["python-version"] == "${{ matrix.python-version }}"
    step = next(step for step in test["steps"] if "run" in step)  # bootstrap.sh takes $PYTHON before python3.x
    assert step["env"]["PYTHON"] == "${{ steps." + setup["id"] + ".outputs.python-path }}"


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

