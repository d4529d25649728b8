"""MLflow run tracking: one parent run per pipeline run, one child run per step.

The parent run is found by the tag `nexus.pipeline_job_id` (KFP's job id, identical for every task of a
run), so steps need no extra plumbing: the first step opens it, each step nests under it, and the
pipeline's exit handler closes it with the final state (FAILED when any step failed).
Secrets never enter params: only the resolved profile (which holds secret *names*, not values) is logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from components.common.paths import artifact_root, tracking_uri

EXPERIMENT = os.environ.get("NEXUS_EXPERIMENT", "nexus-o")
JOB_TAG = "nexus.pipeline_job_id"


def init_mlflow() -> Any:
    """Point MLflow at the configured store and make sure the experiment exists. Returns the module."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        try:
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_root())
        except Exception:  # another process created it first
            if mlflow.get_experiment_by_name(EXPERIMENT) is None:
                raise
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def find_parent_run(job_id: str) -> str | None:
    mlflow = init_mlflow()
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string=f"tags.`{JOB_TAG}` = '{job_id}' and tags.`nexus.kind` = 'pipeline'",
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def open_parent_run(job_id: str, profile_name: str, resolved: dict[str, Any], config_hash: str) -> str:
    """Create (or find, on retry) the pipeline's parent run and log the resolved config and its hash."""
    if existing := find_parent_run(job_id):
        return existing
    mlflow = init_mlflow()
    from components.common.paths import PROJECT_ROOT

    with mlflow.start_run(run_name=f"pipeline-{profile_name}-{job_id}") as run:
        mlflow.set_tags(
            {
                JOB_TAG: job_id,
                "nexus.kind": "pipeline",
                "nexus.profile": profile_name,
                "nexus.config_hash": config_hash,
                "nexus.git_commit": git_commit(PROJECT_ROOT),
            }
        )
        mlflow.log_params(flatten(resolved))
        mlflow.log_dict(resolved, "config/resolved.json")
        return str(run.info.run_id)


def close_parent_run(job_id: str, state: str, error: str | None = None) -> str | None:
    """Mark the parent run FINISHED or FAILED (called by the pipeline's exit handler)."""
    mlflow = init_mlflow()
    run_id = find_parent_run(job_id)
    if run_id is None:
        return None
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "nexus.final_state", state)
    if error:
        client.set_tag(run_id, "nexus.error", error[:4000])
    client.set_terminated(run_id, status="FINISHED" if state == "SUCCEEDED" else "FAILED")
    return run_id


@contextmanager
def child_run(parent_run_id: str | None, step: str, tags: dict[str, str]) -> Iterator[Any]:
    """A child run for one step, nested under the pipeline run (or standalone when there is none)."""
    mlflow = init_mlflow()
    with mlflow.start_run(run_name=step, parent_run_id=parent_run_id, tags={"nexus.step": step, **tags}) as run:
        yield run


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested config to MLflow params (`train.stage1.lr`); values are JSON-encoded scalars/lists."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return {k: v[:6000] for k, v in out.items()}


def git_commit(root: Any) -> str:
    import subprocess

    if env := os.environ.get("NEXUS_GIT_COMMIT"):
        return env
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
