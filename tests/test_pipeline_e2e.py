"""Slow: the tiny pipeline end to end through kfp.local, twice (the second run is all cache hits), then the
registered champion answers an ASR request in a fresh offline Python process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.common.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _run(home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`nexus-o run --profile tiny [extra...]` in a fresh process with its own NEXUS_HOME."""
    env = {**os.environ, "NEXUS_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--profile", "tiny", *extra],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_tiny_pipeline_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "nexus"
    first = _run(home)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "nexus-o v1 (@champion)" in first.stdout
    for step in ("ingest", "synthesize", "train_stage3", "evaluate", "register"):
        assert step in first.stdout
    (evaluation,) = (home / "steps" / "evaluate").glob("*/metrics.json")
    metrics = json.loads(evaluation.read_text())
    assert {"asr_en_wer", "align_unemb_lva_cka", "align_emb_last_lv_mutual_knn"} <= set(metrics), sorted(metrics)
    for png in ("alignment_layers.png", "pca_layers_trimodal.png", "pca_layers_vision_audio.png"):
        assert (evaluation.parent / png).stat().st_size > 0
    testbed = {f"asr_en_wer_testbed_{c}" for c in ("noise", "babble", "reverb")}
    assert testbed | {"asr_en_wer_testbed_noise_whisper_tiny", "asr_en_wer_stage0", "asr_en_wer_stage1"} <= set(metrics)
    assert "Real-scenario testbed" in (evaluation.parent / "report.md").read_text()

    # `nexus-o evaluate` on the registered champion (an MLflow URI) reproduces the step's numbers exactly
    (stage1,) = (home / "steps" / "train_stage1").glob("*/checkpoint")
    env = {**os.environ, "NEXUS_HOME": str(home), "COLUMNS": "200"}
    args = ["evaluate", "--model", "models:/nexus-o@champion", "--baseline", f"stage1={stage1}", "--profile", "tiny"]
    cli = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--out", str(tmp_path / "ev")],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert cli.returncode == 0, cli.stdout[-4000:] + cli.stderr[-4000:]
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for key in ("asr_en_wer", "asr_en_wer_stage1", "asr_en_wer_testbed_noise", "align_unemb_lva_cka"):
        assert again[key] == pytest.approx(metrics[key], abs=1e-9), key

    second = _run(home)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert second.stdout.count("│ yes ") >= 13 and "│ no " not in second.stdout, second.stdout  # all cached
    assert "nexus-o v1 (@champion)" in second.stdout  # nothing re-registered

    wav = sorted((PROJECT_ROOT / "data" / "tiny" / "speech" / "audio").glob("en-digits-*.wav"))[0]
    code = (
        "import mlflow, pandas as pd, json\n"
        f"mlflow.set_tracking_uri('sqlite:///{home / 'mlflow.db'}')\n"
        "m = mlflow.pyfunc.load_model('models:/nexus-o@champion')\n"
        f"out = m.predict(pd.DataFrame([{{'task': 'asr', 'audio': '{wav}'}}]))\n"
        "print(json.dumps({'text': str(out.text[0]), 'cols': list(out.columns)}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["cols"] == ["text", "audio"] and isinstance(answer["text"], str)


def test_failing_gate_registers_nothing(tmp_path: Path) -> None:
    """A strict threshold fails the gate: the run succeeds, nothing is registered, the reason is printed."""
    res = _run(
        tmp_path / "nexus",
        "--no-write-dvc-lock",
        "--overrides",
        json.dumps({"gate": {"max_metrics": {"asr_en_wer": 0.01}}}),
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "gate failed, nothing registered: asr_en_wer=" in res.stdout + res.stderr
    assert "registered model: none" in res.stdout


def test_failing_step_fails_the_run_and_marks_the_parent(tmp_path: Path) -> None:
    """Validation rejects the dataset: the CLI exits non-zero, the exit handler marks the MLflow parent FAILED,
    and no later step ran."""
    import mlflow

    home = tmp_path / "nexus"
    res = _run(home, "--no-write-dvc-lock", "--overrides", json.dumps({"validate": {"min_rows": 100000}}))
    assert res.returncode == 1, res.stdout[-3000:]
    assert "expect_table_row_count_to_be_between" in res.stdout + res.stderr
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    parents = mlflow.search_runs(
        experiment_names=["nexus-o"], filter_string="tags.`nexus.kind` = 'pipeline'", output_format="list"
    )
    assert len(parents) == 1
    assert parents[0].info.status == "FAILED" and parents[0].data.tags["nexus.final_state"] == "FAILED"
    steps = {
        r.info.run_name
        for r in mlflow.search_runs(
            experiment_names=["nexus-o"],
            filter_string=f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'",
            output_format="list",
        )
    }
    assert "validate" in steps and "train_stage1" not in steps
