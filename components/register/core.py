"""Register the candidate as MLflow model `nexus-o` (models-from-code pyfunc), alias `challenger`, and
promote to `champion` when the profile says so. Lineage tags: pipeline job, git commit, config hash,
dataset DVC md5, checkpoint md5, package version, metrics.
"""

from __future__ import annotations

import base64
import json
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from components.common.manifest import Utterance, read_records
from components.common.paths import PROJECT_ROOT
from components.common.step import StepContext, StepResult
from components.common.tracking import git_commit

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def signature() -> object:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "task"),
            ColSpec("string", "text", required=False),
            ColSpec("string", "image", required=False),
            ColSpec("string", "audio", required=False),
            ColSpec("boolean", "return_audio", required=False),
        ]
    )
    outputs = Schema([ColSpec("string", "text"), ColSpec("string", "audio", required=False)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(dataset_dir: Path, manifest: str) -> pd.DataFrame:
    utt = next(u for u in read_records(dataset_dir / manifest, Utterance) if u.task == "asr" and u.lang == "en")
    audio = base64.b64encode((dataset_dir / utt.audio_path).read_bytes()).decode()
    return pd.DataFrame([{"task": "asr", "text": None, "image": None, "audio": audio, "return_audio": False}])


def run(ctx: StepContext) -> StepResult:
    import mlflow

    cfg = ctx.profile.register_
    gate = json.loads(ctx.inputs["gate"].path("decision").read_text())
    if not gate["passed"]:  # a failing gate registers nothing and says why; the run still succeeds
        why = "; ".join(gate["reasons"])
        (ctx.out_dir / "registered.json").write_text(json.dumps({"registered": False, "reasons": gate["reasons"]}))
        ctx.log(f"gate failed, nothing registered: {why}")
        import mlflow as _mlflow

        _mlflow.set_tag("nexus.not_registered", why[:4000])
        return StepResult(
            kind="registration",
            rows=0,
            files={"registered": "registered.json"},
            metrics={"registered_version": 0.0},
            summary=f"not registered: {why}",
        )
    ckpt = ctx.inputs["checkpoint"].path("checkpoint")
    data = ctx.inputs["dataset"]
    metrics = json.loads(ctx.inputs["evaluation"].path("metrics").read_text())
    info = mlflow.pyfunc.log_model(
        name="nexus-o",
        python_model=str(PYFUNC_FILE),
        artifacts={"checkpoint": str(ckpt)},
        code_paths=[str(PROJECT_ROOT / "model")],
        signature=signature(),
        input_example=input_example(data.path(), data.files["manifest"]),
        pip_requirements=[
            f"torch=={version('torch')}",
            f"transformers=={version('transformers')}",
            f"mlflow=={version('mlflow')}",
            f"pycodec2=={version('pycodec2')}",
            "soundfile",
            "scipy",
        ],
    )
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(cfg.model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(cfg.model_name, description="Nexus-O omni-modal model (nexus-o platform)")
    lineage = {
        "pipeline_job_id": ctx.job_id,
        "git_commit": git_commit(PROJECT_ROOT),
        "profile": ctx.profile.name,
        "config_hash": ctx.profile.config_hash(),
        "dataset_uri": data.uri,
        "dataset_md5": data.md5,
        "checkpoint_md5": ctx.inputs["checkpoint"].md5,
        "package_version": version("nexus-o"),
        "metrics": json.dumps({k: round(v, 6) for k, v in metrics.items()}),
    }
    mv = client.create_model_version(
        cfg.model_name,
        info.model_uri,
        run_id=mlflow.active_run().info.run_id,  # type: ignore[union-attr]
        tags={f"nexus.{k}": str(v) for k, v in lineage.items()},
    )
    client.set_registered_model_alias(cfg.model_name, "challenger", mv.version)
    aliases = ["challenger"]
    if cfg.promote_to_champion:
        client.set_registered_model_alias(cfg.model_name, "champion", mv.version)
        client.set_model_version_tag(cfg.model_name, mv.version, "nexus.promoted_by", "pipeline (auto-promote)")
        aliases.append("champion")
    (ctx.out_dir / "registered.json").write_text(
        json.dumps(
            {"name": cfg.model_name, "version": mv.version, "aliases": aliases, "model_uri": info.model_uri}, indent=2
        )
    )
    return StepResult(
        kind="registration",
        rows=1,
        files={"registered": "registered.json"},
        metrics={"registered_version": float(mv.version)},
        headline=("registered_version",),
        summary=f"{cfg.model_name} v{mv.version} ({', '.join(aliases)})",
    )
