"""Run one registered step: resolve config, compute the content key, skip or execute, track, publish.

Every KFP component and the `nexus-o step run` CLI call `run_step`; nothing else orchestrates a step.

    ref_json = run_step("filter", profile="tiny", overrides="{}", job_id="local-1",
                        inputs={"texts": ingest_ref_json})
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.caching import SUCCESS_MARKER, code_version, md5_dir, step_key
from components.common.config import Profile, load_profile
from components.common.manifest import DatasetRef
from components.common.paths import PROJECT_ROOT, set_offline_env, step_dir
from components.common.registry import StepSpec, get_step

log = logging.getLogger("nexus_o")


@dataclass
class StepContext:
    step: str
    profile: Profile
    key: str
    out_dir: Path
    inputs: dict[str, DatasetRef]
    job_id: str
    collections: dict[str, list[DatasetRef]] = field(default_factory=dict)  # inputs gathered from a fan-out

    def log(self, msg: str) -> None:
        print(f"[{self.step}] {msg}", flush=True)


@dataclass
class StepResult:
    """What a step returns. `files` names entry points in `ctx.out_dir`; `rows` the record count."""

    kind: str
    rows: int
    files: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    headline: tuple[str, ...] = ()  # metric names copied to the pipeline's parent run
    uri: str | None = None  # set when the output lives elsewhere than ctx.out_dir (e.g. DVC workspace)
    md5: str | None = None
    summary: str = ""


def _config_for(spec: StepSpec, profile: Profile) -> dict[str, Any]:
    resolved = profile.resolved()
    return {name: resolved[name] for name in spec.params}


def _resolve(func: str) -> Any:
    module, name = func.split(":")
    return getattr(importlib.import_module(module), name)


def _load(func: str) -> Callable[[StepContext], StepResult]:
    fn: Callable[[StepContext], StepResult] = _resolve(func)
    return fn


def ref_file(profile: str, step: str) -> Path:
    """Where a step's output reference is published for DVC (`data/<profile>/refs/<step>.json`)."""
    return PROJECT_ROOT / "data" / profile / "refs" / f"{step}.json"


def run_step(
    step: str,
    profile: str,
    overrides: str | dict[str, Any] | None,
    job_id: str,
    inputs: dict[str, str] | None = None,
) -> str:
    """Execute (or skip, when its content key is done) one step; returns its DatasetRef as JSON."""
    set_offline_env(local=True)
    from components.common.tracking import child_run, find_parent_run

    spec = get_step(step)
    prof = load_profile(profile, overrides)
    given = inputs or {}
    missing = set(spec.inputs) - set(given)
    if missing:
        raise ValueError(f"step {step}: missing inputs {sorted(missing)} (expects {sorted(spec.inputs)})")
    refs = {name: DatasetRef.from_json(blob) for name, blob in given.items() if name not in spec.collect}
    collections = {name: parse_ref_list(given[name]) for name in spec.collect}
    md5s: dict[str, str] = {k: r.md5 for k, r in refs.items()}
    md5s |= {k: ",".join(r.md5 for r in v) for k, v in collections.items()}
    config = _config_for(spec, prof)
    if spec.key_extra:
        config["external"] = _resolve(spec.key_extra)(prof)
    key = step_key(step, dict(sorted(md5s.items())), config, code_version(spec.code_paths))
    out_dir = step_dir(step, key)
    marker = out_dir / SUCCESS_MARKER
    ctx = StepContext(
        step=step, profile=prof, key=key, out_dir=out_dir, inputs=refs, job_id=job_id, collections=collections
    )
    parent = find_parent_run(job_id)
    tags = {"nexus.step_key": key, "nexus.profile": prof.name, "nexus.pipeline_job_id": job_id}
    start = time.time()
    with child_run(parent, step, tags) as run:
        import mlflow

        mlflow.log_params({f"input.{k}": v[:500] for k, v in md5s.items()} | {"step_key": key})
        if marker.exists():
            done = json.loads(marker.read_text())
            ctx.log(f"cached: content key {key} already finished at {out_dir} - skipping")
            mlflow.set_tag("nexus.cached", "true")
            mlflow.log_metrics({"duration_s": time.time() - start, "cached": 1.0, "rows": float(done["ref"]["rows"])})
            _copy_headline(parent, done.get("metrics", {}), done.get("headline", []))
            ref = DatasetRef(**done["ref"])
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            mlflow.set_tag("nexus.cached", "false")
            try:
                result = _load(spec.func)(ctx)
            except Exception as exc:
                mlflow.set_tag("nexus.error", f"{type(exc).__name__}: {exc}"[:4000])
                (out_dir / "error.txt").write_text(traceback.format_exc())
                raise
            uri = result.uri or str(out_dir)
            ref = DatasetRef(
                uri=uri, md5=result.md5 or md5_dir(Path(uri)), rows=result.rows, kind=result.kind, files=result.files
            )
            duration = time.time() - start
            metrics = {**result.metrics, "duration_s": duration, "cached": 0.0, "rows": float(result.rows)}
            (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
            mlflow.log_metrics(metrics)
            mlflow.log_artifact(str(out_dir / "metrics.json"))
            _copy_headline(parent, result.metrics, list(result.headline))
            marker.write_text(
                json.dumps(
                    {
                        "ref": json.loads(ref.to_json()),
                        "metrics": result.metrics,
                        "headline": list(result.headline),
                        "summary": result.summary,
                        "run_id": run.info.run_id,
                    },
                    indent=2,
                    sort_keys=True,
                )
            )
            ctx.log(f"done in {duration:.1f}s: {result.summary or ''} -> {uri}")
    if spec.items is None:  # one ref per step for DVC; fan-out items are gathered by their consumer
        published = ref_file(prof.name, step)
        published.parent.mkdir(parents=True, exist_ok=True)
        published.write_text(ref.to_json() + "\n")
    return ref.to_json()


def parse_ref_list(blob: str) -> list[DatasetRef]:
    """A JSON array of DatasetRefs (objects or JSON strings), as KFP's dsl.Collected delivers them."""
    try:
        items = json.loads(blob)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON array of dataset references, got {blob[:200]!r}") from exc
    if not isinstance(items, list) or not items:
        raise ValueError(f"expected a non-empty JSON array of dataset references, got {blob[:200]!r}")
    return [DatasetRef.from_json(i if isinstance(i, str) else json.dumps(i)) for i in items]


def fan_out_items(spec: StepSpec, upstream: str) -> list[str]:
    """The item references a fan-out step runs over, from its producing step's reference."""
    if spec.items is None:
        raise ValueError(f"step {spec.name} is not a fan-out step")
    module, name = spec.items.split(":")
    items: list[str] = getattr(importlib.import_module(module), name)(DatasetRef.from_json(upstream))
    return items


def _copy_headline(parent: str | None, metrics: dict[str, float], names: list[str]) -> None:
    if parent is None or not names:
        return
    import mlflow

    client = mlflow.MlflowClient()
    for name in names:
        if name in metrics:
            client.log_metric(parent, name, float(metrics[name]))
