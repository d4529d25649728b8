"""The step runner with a real MLflow store (sqlite) in an isolated NEXUS_HOME: caching, tracking, refs."""

import json
from pathlib import Path

import pytest

from components.common.manifest import DatasetRef


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "nexus"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "nexus"


def test_second_run_is_a_cache_hit_and_tracked(home: Path) -> None:
    from components.common.config import load_profile
    from components.common.step import run_step
    from components.common.tracking import find_parent_run, init_mlflow, open_parent_run

    prof = load_profile("tiny")
    parent = open_parent_run("job-1", prof.name, prof.resolved(), prof.config_hash())
    assert find_parent_run("job-1") == parent
    first = DatasetRef.from_json(run_step("ingest", "tiny", "{}", "job-1"))
    second = DatasetRef.from_json(run_step("ingest", "tiny", "{}", "job-1"))
    assert first == second and first.rows > 0
    out = Path(first.uri)
    assert (out / "_SUCCESS.json").exists() and json.loads((out / "metrics.json").read_text())["cached"] == 0.0
    mlflow = init_mlflow()
    children = mlflow.search_runs(
        experiment_names=["nexus-o"], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", output_format="list"
    )
    assert sorted(c.data.tags["nexus.cached"] for c in children) == ["false", "true"]
    assert mlflow.get_run(parent).data.params["ingest.fortunes_en"] == str(prof.ingest.fortunes_en)


def test_override_changes_key_and_reruns(home: Path) -> None:
    from components.common.step import run_step

    a = DatasetRef.from_json(run_step("ingest", "tiny", "{}", "job-2"))
    b = DatasetRef.from_json(run_step("ingest", "tiny", '{"ingest.fortunes_en": 5}', "job-2"))
    assert a.uri != b.uri and a.md5 != b.md5 and b.rows < a.rows


def test_missing_input_is_named(home: Path) -> None:
    from components.common.step import run_step

    with pytest.raises(ValueError, match=r"missing inputs \['texts'\]"):
        run_step("filter", "tiny", "{}", "job-3", {})
