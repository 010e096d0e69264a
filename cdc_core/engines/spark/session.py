"""The Spark session an engine runs on: classic Spark (`engine.master`) or Spark Connect (`engine.remote`).

The settings every capture needs are set here and win over `engine.conf` only where results depend on them:
UTC (dates are instants), exact column names (case-sensitive), TIMESTAMP_MICROS (not INT96), proleptic dates
written and read as they are, ANSI casts. Everything else (memory, executors, S3A…) comes from `engine.conf`.
"""

from __future__ import annotations

import importlib.util
import os

from ...config import EngineConfig
from ...errors import ConfigError

RESULT_CONF = {  # what the results depend on: set on every session, classic or Connect
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.caseSensitive": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    "spark.sql.ansi.enabled": "true",
}
LAUNCH_CONF = {  # a classic session this process launches (defaults: engine.conf may change them)
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "16",
}


def open_session(settings: EngineConfig):
    """(session, owned): the process's active session if there is one (a notebook, Databricks), else a new one
    that the engine owns and stops."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # never bind or advertise another interface by default
    from pyspark.sql import SparkSession

    for key, value in settings.conf.items():
        if key in RESULT_CONF and value.lower() != RESULT_CONF[key].lower():
            raise ConfigError(f'Config key "engine.conf" sets {key} to {value!r}; cdc_core needs '
                              f"{RESULT_CONF[key]!r} there (results depend on it) — remove it")
    if settings.remote:
        _require_connect()
        session = SparkSession.builder.remote(settings.remote).getOrCreate()
        owned = True
    else:
        active = SparkSession.getActiveSession()
        if active is not None:
            session, owned = active, False
        else:
            builder = SparkSession.builder.master(settings.master or "local[*]").appName("cdc_core")
            for key, value in {**LAUNCH_CONF, **settings.conf, **RESULT_CONF}.items():
                builder = builder.config(key, value)
            session, owned = builder.getOrCreate(), True
            session.sparkContext.setLogLevel("FATAL")  # a refused value stops a job: the error says it in one line
    for key, value in RESULT_CONF.items():  # runtime settings: also on a session we did not launch
        session.conf.set(key, value)
    if settings.remote:
        for key, value in settings.conf.items():
            session.conf.set(key, value)
    return session, owned


def _require_connect() -> None:
    """A one-line ConfigError naming the extra when Spark Connect's client libraries (pyspark[connect]) are missing."""
    for module in ("pandas", "grpc", "grpc_status", "google.rpc", "zstandard"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a missing parent package ("google")
            found = False
        if not found:
            raise ConfigError(f"the Spark Connect engine needs {module}: pip install 'cdc-core[spark-connect]'")
