"""Where things live. Everything local sits under NEXUS_HOME (default `<repo>/.nexus`, gitignored).

Layout (see docs/architecture.md):
    $NEXUS_HOME/mlflow.db           MLflow backend store (sqlite)
    $NEXUS_HOME/mlartifacts/        MLflow artifact root
    $NEXUS_HOME/kfp/                kfp.local pipeline root
    $NEXUS_HOME/dvc-remote/         DVC local remote
    $NEXUS_HOME/steps/<step>/<key>/ content-keyed step outputs (checkpoints live here too)
    $NEXUS_HOME/torch_extensions/   DeepSpeed op build cache
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


def nexus_home() -> Path:
    """The state directory; `NEXUS_HOME` overrides the default `<repo>/.nexus`."""
    home = Path(os.environ.get("NEXUS_HOME", PROJECT_ROOT / ".nexus")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def set_offline_env(local: bool = True) -> None:
    """Set the offline/telemetry variables (without overriding values the user set explicitly)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if local:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(nexus_home() / "torch_extensions"))


def tracking_uri() -> str:
    """MLflow tracking URI: `MLFLOW_TRACKING_URI` (cluster) or the local sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{nexus_home() / 'mlflow.db'}"


def artifact_root() -> str:
    return os.environ.get("NEXUS_ARTIFACT_ROOT") or (nexus_home() / "mlartifacts").as_uri()


def step_dir(step: str, key: str) -> Path:
    """Content-keyed output folder of one step (stable across runs for the same key)."""
    return nexus_home() / "steps" / step / key
