"""`cdc-core init`: a commented starter config.json for the built-in demo, and how to switch to Kaggle and S3.

JSON has no comments, so the starter uses the `"_comment"` key, which the config loader accepts in any object and
ignores: the file stays plain JSON that every tool reads, and each explanation sits next to the keys it explains
(a companion text file would drift away from the config it describes).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError

STARTER = {
    "_comment": [
        "A starter config written by `cdc-core init`: the built-in demo dataset into the local folder ./lake.",
        "Run one capture with `cdc-core --once` (or `python -m cdc_core --once`); without --once a capture runs",
        "on every tick of \"timer\". \"_comment\" keys are notes: the loader ignores them.",
        "\"lake\": a local folder (relative to this file), or S3: \"s3://my-bucket/loyalty\" with",
        "AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… in .env (or a profile: \"aws\": {\"profile\": \"…\"});",
        "pip install 'cdc_core[s3]'. \"data_dir\" keeps the local state (committed snapshots, outbox, logs).",
        "Prometheus metrics go to data/metrics/cdc_core.prom after every cycle once pip install 'cdc_core[metrics]'",
        "is done (until then the first cycle says it writes none).",
    ],
    "source": {
        "_comment": [
            "demo: a generated copy of the Kaggle loyalty dataset, a new version on every fetch (works offline).",
            "Kaggle instead: {\"type\": \"kaggle\", \"dataset\": \"teocalvo/teomewhy-loyalty-system\"}, with",
            "KAGGLE_USERNAME=… and KAGGLE_KEY=… in a .env file next to this config; pip install 'cdc_core[kaggle]'.",
        ],
        "type": "demo", "seed": 42, "scale": 1,
    },
    "lake": "lake",
    "data_dir": "data",
    "timer": {"_comment": "The timed loop's interval: seconds, minutes, hours or days.", "unit": "hours",
              "value": 6},
    "tables": [
        {"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"},
        {"name": "produtos", "pk": "IdProduto", "sep": ";"},
        {"name": "transacoes", "pk": "IdTransacao", "date_field": "DtCriacao", "sep": ";"},
        {"name": "transacao_produto", "pk": "idTransacaoProduto", "sep": ";"},
    ],
}


def write_starter(path: Path, *, force: bool = False) -> Path:
    """Write the starter config to `path` (refusing to replace an existing file unless `force`)."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder — give the config file's path, like {path / 'config.json'}")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists — keep it, or pass --force to replace it with the starter")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(STARTER, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot write {path} ({exc.strerror or exc}) — choose a writable folder") from None
    return path
