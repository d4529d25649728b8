"""`nexus-o`: run, compile and inspect the pipeline.

nexus-o run --profile tiny                 # whole local pipeline (kfp.local), then a summary
nexus-o compile --profile cluster --out nexus-o.yaml
nexus-o step filter --profile tiny         # one step from the published refs (what dvc.yaml calls)
nexus-o data filter --input IN.jsonl --output KEPT.jsonl --rejected REJ.jsonl
nexus-o dvc-yaml [--check]
nexus-o evaluate --model models:/nexus-o@champion [--baseline stage1=PATH] [--dataset DIR] [--profile small]
nexus-o align --a A.npy --b B.npy [--topk 10]   # kernel-alignment metrics of two paired feature matrices
nexus-o ui                                 # how to open the MLflow UI on the local store
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from components.common.paths import PROJECT_ROOT, nexus_home, set_offline_env, tracking_uri

app = typer.Typer(add_completion=False, help="nexus-o: raw text to a registered Nexus-O model.")
data_app = typer.Typer(help="Data utilities.")
app.add_typer(data_app, name="data")
console = Console()


@app.command()
def run(
    profile: str = typer.Option("tiny", help="profile name (pipelines/profiles)"),
    overrides: str = typer.Option("{}", help="JSON overrides, e.g. '{\"train.stage1.steps\": 2}'"),
    write_dvc_lock: bool = typer.Option(True, help="record dvc.lock after a successful run"),
) -> None:
    """Run the whole pipeline locally with kfp.local and print a summary."""
    set_offline_env(local=True)
    from kfp import local

    from components.common.config import load_profile
    from pipelines.pipeline import build_pipeline

    prof = load_profile(profile, overrides)
    console.print(
        f"[bold]nexus-o[/] profile [cyan]{prof.name}[/] (config {prof.config_hash()[:12]}), state in {nexus_home()}"
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(nexus_home() / "kfp"), raise_on_error=True
    )
    started = time.time()
    error = None
    try:
        build_pipeline(prof)(profile=profile, overrides=overrides)
    except Exception as exc:  # summarise what did finish, then fail
        error = exc
    summary = summarize(started)
    if error is not None:
        console.print(f"[red]pipeline failed:[/] {error}")
        raise typer.Exit(1)
    if write_dvc_lock and prof.name == _dvc_profile():
        from components.version.core import dvc

        dvc("commit", "-f", "-q")
        console.print("dvc.lock written (dvc commit); commit dvc.lock and data/*/*.dvc to pin this run's data")
    console.print(f"total {time.time() - started:.0f}s; registered model: {summary.get('registered', 'none')}")


def _dvc_profile() -> str:
    from pipelines.dvcgen import DVC_PROFILE

    return DVC_PROFILE


def summarize(since: float) -> dict[str, Any]:
    """Print per-step status/time/cached/rows and headline metrics of the latest pipeline run."""
    from components.common.tracking import EXPERIMENT, init_mlflow

    mlflow = init_mlflow()
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string="tags.`nexus.kind` = 'pipeline'",
        order_by=["start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs or runs[0].info.start_time / 1000 < since - 5:
        console.print("[yellow]no pipeline run recorded[/]")
        return {}
    parent = runs[0]
    children = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        order_by=["start_time ASC"],
        output_format="list",
    )
    table = Table(title=f"pipeline run {parent.info.run_id} ({parent.data.tags.get('nexus.final_state', '?')})")
    for col in ("step", "status", "cached", "time (s)", "rows", "key"):
        table.add_column(col)
    for ch in children:
        m, t = ch.data.metrics, ch.data.tags
        table.add_row(
            ch.info.run_name,
            ch.info.status,
            "yes" if t.get("nexus.cached") == "true" else "no",
            f"{m.get('duration_s', float('nan')):.1f}",
            str(int(m.get("rows", 0))),
            t.get("nexus.step_key", ""),
        )
    console.print(table)
    headline = {k: v for k, v in parent.data.metrics.items()}
    if headline:
        console.print("headline metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(headline.items())))
    out: dict[str, Any] = {"run_id": parent.info.run_id, "metrics": headline}
    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias("nexus-o", "champion")
        out["registered"] = f"nexus-o v{mv.version} (@champion)"
    except Exception:
        pass
    console.print(f"MLflow: {tracking_uri()}  (open with `nexus-o ui`); DVC data: {PROJECT_ROOT / 'data'}")
    return out


@app.command()
def compile(profile: str = typer.Option("cluster"), out: Path = typer.Option(Path("build/nexus-o.yaml"))) -> None:
    """Compile the pipeline to KFP YAML with the profile's cluster settings."""
    from components.common.config import load_profile
    from pipelines.pipeline import compile_pipeline

    out.parent.mkdir(parents=True, exist_ok=True)
    compile_pipeline(load_profile(profile), str(out))
    console.print(f"wrote {out}")


@app.command()
def step(
    name: str,
    profile: str = typer.Option("tiny"),
    overrides: str = typer.Option("{}"),
    job_id: str = typer.Option("", help="pipeline job id (default: a fresh cli-<time> id)"),
) -> None:
    """Run one step, reading its inputs from the published references (data/<profile>/refs/)."""
    set_offline_env()
    from components.common.registry import StepSpec, get_step
    from components.common.step import fan_out_items, ref_file, run_step

    spec = get_step(name)
    job = job_id or f"cli-{int(time.time())}"

    def published(step_name: str) -> str:
        path = ref_file(profile, step_name)
        if not path.exists():
            console.print(f"[red]{path} missing[/]: run step {step_name!r} first (or `nexus-o run`)")
            raise typer.Exit(2)
        return path.read_text().strip()

    def run_fan_out(fan: StepSpec) -> list[str]:  # every item of a fan-out step, each cached on its own
        ((arg, src),) = fan.inputs.items()
        return [run_step(fan.name, profile, overrides, job, {arg: item}) for item in fan_out_items(fan, published(src))]

    if spec.items is not None:
        for ref in run_fan_out(spec):
            console.print(ref)
        return
    inputs = {}
    for arg, src in spec.inputs.items():
        inputs[arg] = json.dumps(run_fan_out(get_step(src))) if arg in spec.collect else published(src)
    console.print(run_step(name, profile, overrides, job, inputs))


@data_app.command("filter")
def data_filter(
    input: Path = typer.Option(..., "--input"),
    output: Path = typer.Option(..., "--output"),
    rejected: Path = typer.Option(..., "--rejected"),
    profile: str = typer.Option("tiny"),
) -> None:
    """Apply the paper's text filters to a JSONL file with a `text` field."""
    from components.common.config import load_profile
    from components.filter.core import filter_jsonl

    if not input.exists():
        console.print(f"[red]{input} does not exist[/]")
        raise typer.Exit(2)
    counts = filter_jsonl(input, output, rejected, load_profile(profile).filter)
    console.print(counts.summary())


@app.command("dvc-yaml")
def dvc_yaml(check: bool = typer.Option(False, help="fail if dvc.yaml differs from the registry")) -> None:
    """Write dvc.yaml from the stage registry (or check it is current)."""
    from pipelines.dvcgen import render

    path = PROJECT_ROOT / "dvc.yaml"
    text = render()
    if check:
        if not path.exists() or path.read_text() != text:
            console.print("[red]dvc.yaml is out of date[/]: run `nexus-o dvc-yaml`")
            raise typer.Exit(1)
        console.print("dvc.yaml matches the registry")
        return
    path.write_text(text)
    console.print(f"wrote {path}")


@app.command()
def align(
    a: Path = typer.Option(..., "--a", help="features A [N, d_A] (.npy)"),
    b: Path = typer.Option(..., "--b", help="features B [N, d_B] (.npy), row i paired with A's row i"),
    topk: int = typer.Option(10, help="neighbours for the kNN metrics and cknna"),
    normalize: bool = typer.Option(True, help="L2-normalise rows first (--no-normalize to skip)"),
) -> None:
    """Kernel-alignment metrics between two paired feature matrices: one JSON object on stdout."""
    import numpy as np

    from components.evaluate.alignment import alignment_scores

    feats = []
    for path in (a, b):
        if not path.is_file():
            typer.echo(f"error: {path} not found (give a .npy feature matrix)", err=True)
            raise typer.Exit(2)
        feats.append(np.load(path, allow_pickle=False))  # never unpickle a file from the command line
    try:
        scores = alignment_scores(feats[0], feats[1], topk=topk, normalize=normalize)
    except ValueError as exc:
        typer.echo(f"error: {a} vs {b}: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(scores))


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="checkpoint folder or MLflow URI, e.g. models:/nexus-o@champion"),
    dataset: Path | None = typer.Option(None, help="dataset folder (manifest.jsonl.gz); default: the profile's"),
    testbed: Path | None = typer.Option(None, help="testbed folder (manifest.jsonl.gz); default: the profile's"),
    baseline: list[str] = typer.Option([], help="NAME=CHECKPOINT_OR_URI evaluated on the same ASR items"),
    profile: str = typer.Option("tiny", help="profile whose `evaluate` settings and published data are used"),
    overrides: str = typer.Option("{}"),
    out: Path | None = typer.Option(None, help="output folder (default: $NEXUS_HOME/evaluations/<time>)"),
    log: bool = typer.Option(True, help="log the evaluation as an MLflow run (--no-log to skip)"),
) -> None:
    """Evaluate one checkpoint alone: the evaluate step's tables, report and predictions for any model."""
    set_offline_env()
    from components.common.config import load_profile
    from components.common.manifest import DatasetRef, Utterance, read_records
    from components.common.step import ref_file
    from components.common.tracking import EXPERIMENT, init_mlflow
    from components.evaluate.core import evaluate_all, resolve_checkpoint

    prof = load_profile(profile, overrides)
    dest = out or nexus_home() / "evaluations" / time.strftime("%Y%m%d-%H%M%S")
    mlflow = init_mlflow()  # the project's tracking store: models:/ URIs resolve against its registry

    def published(step_name: str) -> Path | None:
        path = ref_file(prof.name, step_name)
        return DatasetRef.from_json(path.read_text()).path() if path.exists() else None

    data = dataset or published("version")
    if data is None or not (data / "manifest.jsonl.gz").is_file():
        console.print(
            f"[red]no dataset[/]: give --dataset DIR with a manifest.jsonl.gz, or run profile {profile} first"
        )
        raise typer.Exit(2)
    tb = testbed or published("testbed")
    try:
        ckpt = resolve_checkpoint(model, dest / "model")
        extra = {}
        for item in baseline:
            name, sep, spec = item.partition("=")
            if not sep or not name.isidentifier():
                raise ValueError(f"--baseline {item!r}: expected NAME=CHECKPOINT_OR_URI with NAME like champion")
            extra[name] = resolve_checkpoint(spec, dest / f"baseline_{name}")
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    rows = read_records(tb / "manifest.jsonl.gz", Utterance) if tb and (tb / "manifest.jsonl.gz").is_file() else []
    metrics, files, _ = evaluate_all(
        ckpt,
        data,
        "manifest.jsonl.gz",
        prof.evaluate,
        dest,
        testbed=(rows, tb) if rows and tb else None,
        baselines=extra,
        log=lambda msg: console.print(f"[dim]{msg}[/]"),
    )
    if log:
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name="evaluate", tags={"nexus.kind": "evaluation", "nexus.profile": prof.name}):
            mlflow.log_params({"model": model, "dataset": str(data), "testbed": str(tb)})
            mlflow.log_metrics(metrics)
            mlflow.log_artifacts(str(dest), artifact_path="evaluation")
    table = Table(title=f"evaluation of {model}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(k for k in metrics if not k.startswith(("align_emb", "eval_items"))):
        table.add_row(key, f"{metrics[key]:.4f}")
    console.print(table)
    console.print(f"report: {dest / files['report']}")


@app.command()
def ui(port: int = 5000) -> None:
    """Print the command that opens the MLflow UI on the local store."""
    console.print(
        f"{Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri {tracking_uri()} "
        f"--port {port}   # then open http://127.0.0.1:{port}"
    )


@app.command()
def show_config(profile: str = typer.Option("tiny"), overrides: str = typer.Option("{}")) -> None:
    """Print the resolved config and its hash."""
    from components.common.config import load_profile

    prof = load_profile(profile, overrides)
    console.print_json(json.dumps(prof.resolved()))
    console.print(f"config hash {prof.config_hash()}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
