from pathlib import Path

import yaml

from components.common.paths import PROJECT_ROOT
from components.common.registry import STEPS
from pipelines.dvcgen import render


def test_dvc_yaml_matches_registry() -> None:
    assert (PROJECT_ROOT / "dvc.yaml").read_text() == render(), "run `nexus-o dvc-yaml`"


def test_dvc_params_exist_in_the_profile_file() -> None:
    """DVC reads params from the YAML file itself: a section left to its pydantic default breaks `dvc commit`."""
    from pipelines.dvcgen import DVC_PROFILE

    raw = yaml.safe_load((PROJECT_ROOT / "pipelines" / "profiles" / f"{DVC_PROFILE}.yaml").read_text())
    for spec in STEPS:
        missing = [p for p in spec.params if p not in raw]
        assert not missing, f"{spec.name}: add {missing} to pipelines/profiles/{DVC_PROFILE}.yaml"


def test_registry_inputs_refer_to_earlier_steps() -> None:
    seen: set[str] = set()
    for spec in STEPS:
        assert set(spec.inputs.values()) <= seen, spec.name
        seen.add(spec.name)


def test_cluster_compile_has_gpus_image_and_secrets(tmp_path: Path) -> None:
    from components.common.config import load_profile
    from pipelines.pipeline import compile_pipeline

    prof = load_profile("cluster")
    out = tmp_path / "p.yaml"
    compile_pipeline(prof, str(out))
    docs = list(yaml.safe_load_all(out.read_text()))
    spec = docs[0]
    tasks = spec["root"]["dag"]["tasks"]
    assert "close-run" in tasks and any(k.startswith("exit-handler") for k in tasks)  # MLflow run closed on exit
    executors = spec["deploymentSpec"]["executors"]
    loops = [c for name, c in spec["components"].items() if name.startswith("comp-for-loop")]
    assert len(loops) == 1 and "synthesize-shard" in loops[0]["dag"]["tasks"]  # shards fan out (ParallelFor)
    text = out.read_text()
    assert f"parallelismLimit: {prof.cluster.max_parallel_shards}" in text
    train = [e for name, e in executors.items() if "train-stage" in name]
    assert len(train) == 4  # stages 0-3
    for e in train:
        res = e["container"]["resources"]
        assert res["accelerator"]["resourceCount"] == str(prof.cluster.gpus_per_train_step)
        assert e["container"]["image"] == prof.cluster.image
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, e in platform.items():  # every task shares NEXUS_HOME; GPU tasks also see the model volume
        pvcs = {m["constant"]: m["mountPath"] for m in e.get("pvcMount", [])}
        assert pvcs.get(prof.cluster.workspace_pvc) == prof.cluster.workspace_mount, name
        if "train-stage" in name or "testbed" in name or "evaluate" in name:  # checkpoints, labeler, recordings
            assert pvcs.get(prof.cluster.models_pvc) == prof.cluster.models_mount, name
        if "train-stage" in name:
            assert any(v["mountPath"] == "/dev/shm" for v in e.get("emptyDirMounts", []))
    assert any("secretAsEnv" in v for v in platform.values())
    assert any("nodeSelector" in v for v in platform.values())
    for e in executors.values():  # secrets arrive only via secretAsEnv, never as literal env values
        names = {env["name"] for env in e["container"].get("env", [])}
        assert not names & set(prof.cluster.secret_env)
