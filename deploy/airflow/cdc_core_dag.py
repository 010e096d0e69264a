"""cdc_core on Apache Airflow 3: one capture task per configured table, then `verify` of the whole lake.

Graph: `tables` reads the config and lists its tables → `capture` (one mapped task instance per table, labelled
with the table's name; each runs `cdc_core.run_once(config, tables=[table])`) → `verify` (replays the lake and
compares it with the committed snapshots) and `all_captured` (fails the DAG run when a table failed or was held).

- A capture task fails when its table's status is "failed" (retried if you set `retries`: a retry publishes
  what is pending first) or "held" (a guard held it back: not retried). To publish a held capture after a look,
  trigger the DAG with the param `accept_held`, e.g. `{"accept_held": ["clientes"]}` (the CLI's
  `--accept-held clientes`). Its return value (XCom) is the table's run id, status, I/U/D counts and rows.
- `verify` runs even when a capture failed: it checks what the lake committed, which a failed capture leaves as
  it was. Because the tasks of a DAG run share one data dir, which takes one capture at a time, captures run one
  after another and DAG runs never overlap.
- The config file: the Airflow Variable `cdc_core_config` (a path), else the environment variable `CDC_CONFIG`,
  else `/opt/cdc_core/config.json`. It is read when tasks run, never when the DAG file is parsed, so the DAG
  processor needs neither the file nor cdc_core's data dir. Its `.env` (credentials) is loaded as the CLI does.
- The schedule: `CDC_SCHEDULE` in the environment (a cron expression or preset; default `0 */6 * * *`, every 6
  hours; `none` for manual runs only). A source whose version did not move is skipped, as in the CLI.

Deploy: `pip install 'cdc-core[…extras your config needs]'` into the environment of the Airflow workers, copy
this file into the DAGs folder, and `airflow variables set cdc_core_config /path/to/config.json`.
"""

from __future__ import annotations

import logging
import os

import pendulum
from airflow.sdk import Param, TriggerRule, Variable, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

DAG_ID = "cdc_core"
CONFIG_VARIABLE, CONFIG_ENV, DEFAULT_CONFIG = "cdc_core_config", "CDC_CONFIG", "/opt/cdc_core/config.json"
SCHEDULE = os.environ.get("CDC_SCHEDULE", "0 */6 * * *")


def config_path() -> str:
    """The config file this run uses: the Airflow Variable, else $CDC_CONFIG, else the default path."""
    return Variable.get(CONFIG_VARIABLE, default=None) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def load(config: str):
    """The config, with cdc_core's log lines (secrets masked) in the task log and in data_dir/logs as the CLI has
    them. Raises cdc_core's one-line ConfigError when the file is missing or invalid."""
    from cdc_core import load_config
    from cdc_core.logs import setup_logging

    loaded = load_config(config)
    setup_logging(loaded.data_dir)
    logging.getLogger("cdc_core").propagate = False  # its own handlers mask secrets; Airflow's would not
    return loaded


@dag(dag_id=DAG_ID, schedule=None if SCHEDULE == "none" else SCHEDULE,
     start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, max_active_runs=1, tags=["cdc_core"],
     doc_md=__doc__, params={"accept_held": Param([], type="array", items={"type": "string"},
                                                  description="tables whose held capture this run publishes")})
def cdc_core_dag():
    @task(retries=0)
    def tables() -> list[dict[str, str]]:
        """This run's tables, each with the config file: one capture task instance each."""
        config = config_path()
        return [{"config": config, "table": t.name} for t in load(config).tables]

    @task(map_index_template="{{ task.op_kwargs['table'] }}", max_active_tis_per_dagrun=1)
    def capture(config: str, table: str) -> dict:
        """One capture cycle of one table; fails when the table failed or was held."""
        from cdc_core import run_once
        from cdc_core.cli import print_report

        accept = [table] if table in get_current_context()["params"]["accept_held"] else []
        report = run_once(load(config), tables=[table], accept_held=accept)
        print_report(report)
        result = report.tables[0]
        if result.status == "held":
            raise AirflowFailException(f"{table} is held: {result.error}")
        if result.status == "failed":
            raise AirflowException(f"{table} failed: {result.error}")
        return {"run_id": report.run_id, "status": result.status, "counts": result.counts, "rows": result.rows}

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def verify(plan: list[dict[str, str]]) -> dict:
        """Replay every table from the lake and compare it with its committed snapshot; fails on a difference."""
        from cdc_core import verify as check

        checks = check(load(plan[0]["config"]))
        for c in checks:
            print(f"ok      {c.table}  run {c.run_id}  {c.rows:,} rows" if c.ok else
                  "\n".join(f"FAILED  {c.table}  {problem}" for problem in c.problems))
        bad = [c.table for c in checks if not c.ok]
        if bad:
            raise AirflowFailException(f"the lake does not replay to the committed snapshots of {', '.join(bad)}")
        return {c.table: c.run_id for c in checks}

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def all_captured() -> None:
        """Runs only when a capture failed or was held, and fails, so that the DAG run shows it."""
        raise AirflowFailException("a table failed or was held: see the failed capture task(s)")

    plan = tables()
    capture.expand_kwargs(plan) >> [verify(plan), all_captured()]


cdc_core_dag()
