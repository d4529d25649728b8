"""The Kubeflow pipeline, built from the stage registry (components/common/registry.py).

No `from __future__ import annotations` here: KFP reads the pipeline function's real annotations.

    open_run -> ingest -> filter -> judge -> synthesize_plan -> ParallelFor(synthesize_shard) -> synthesize (merge)
             -> validate -> version -> testbed -> train_stage0 -> train_stage1 -> train_stage2
             -> train_stage3 -> evaluate (+ testbed, stage 0/1 baselines) -> gate -> register (only if the gate
             passed)  (exit: close_run)

Locally `nexus-o run` executes it with kfp.local (SubprocessRunner, use_venv=False); `nexus-o compile`
writes the same DAG as KFP YAML with the profile's cluster settings (GPUs, node selector, tolerations,
shared memory, secrets as env). Every task disables KFP's cache: the steps' own content keys decide.
"""

from typing import Any

from kfp import dsl

from components.common.config import Profile
from components.common.registry import STEPS, StepSpec

STEP_NAMES = tuple(s.name for s in STEPS)


def _components() -> dict[str, Any]:
    from components.evaluate.component import evaluate
    from components.filter.component import filter as filter_
    from components.gate.component import gate
    from components.ingest.component import ingest
    from components.judge.component import judge
    from components.register.component import register
    from components.synthesize.component import synthesize, synthesize_plan, synthesize_shard
    from components.testbed.component import testbed
    from components.train.component import train_stage0, train_stage1, train_stage2, train_stage3
    from components.validate.component import validate
    from components.version.component import version

    return {
        "ingest": ingest,
        "filter": filter_,
        "judge": judge,
        "synthesize_plan": synthesize_plan,
        "synthesize_shard": synthesize_shard,
        "synthesize": synthesize,
        "validate": validate,
        "version": version,
        "testbed": testbed,
        "train_stage0": train_stage0,
        "train_stage1": train_stage1,
        "train_stage2": train_stage2,
        "train_stage3": train_stage3,
        "evaluate": evaluate,
        "gate": gate,
        "register": register,
    }


def apply_cluster_settings(task: Any, spec: StepSpec, prof: Profile) -> None:
    """GPU requests and scheduling for a task (compiled into the YAML; kfp.local ignores them)."""
    from kfp import kubernetes

    c = prof.cluster
    for name, value in c.env.items():
        task.set_env_variable(name, value)
    kubernetes.use_secret_as_env(
        task, secret_name=c.secret_name, secret_key_to_env={v: k for k, v in c.secret_env.items()}
    )
    kubernetes.mount_pvc(task, pvc_name=c.workspace_pvc, mount_path=c.workspace_mount)
    # the models volume (pretrained checkpoints, the labeler, testbed recordings) on every task that reads it
    resources = spec.resources
    if resources != "cpu" or spec.models_volume:
        kubernetes.mount_pvc(task, pvc_name=c.models_pvc, mount_path=c.models_mount)
    gpus = {"gpu_train": c.gpus_per_train_step, "gpu_eval": c.gpus_per_eval_step}.get(resources, 0)
    if gpus:
        task.set_accelerator_type(c.accelerator_type).set_accelerator_limit(gpus)
        task.set_cpu_request(str(8 * gpus)).set_memory_request(f"{64 * gpus}G")
        for key, value in c.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for tol in c.tolerations:
            kubernetes.add_toleration(
                task,
                key=tol.get("key"),
                operator=tol.get("operator", "Equal"),
                value=tol.get("value"),
                effect=tol.get("effect"),
            )
        kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory")


def build_pipeline(prof: Profile, cluster: bool = False) -> Any:
    """The pipeline function for `prof` (its name is the default `profile` parameter)."""
    from components.common.component import close_run, open_run

    comps = _components()
    specs = {s.name: s for s in STEPS}

    @dsl.pipeline(name="nexus-o", description="Raw text to a registered, evaluated Nexus-O model.")
    def nexus_o(profile: str = prof.name, overrides: str = "{}") -> None:
        job = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        closer = close_run(job_id=job).set_caching_options(False)
        with dsl.ExitHandler(closer, name="nexus-o-run"):
            opened = open_run(profile=profile, overrides=overrides, job_id=job).set_caching_options(False)
            outs: dict[str, Any] = {}
            for name in STEP_NAMES:
                spec = specs[name]
                args = {
                    arg: dsl.Collected(outs[src]) if arg in spec.collect else outs[src]
                    for arg, src in spec.inputs.items()
                }
                if spec.items is not None:  # fan-out: one task per item of the producing step's list
                    ((arg, src),) = spec.inputs.items()
                    with dsl.ParallelFor(outs[src], parallelism=prof.cluster.max_parallel_shards) as item:
                        task = comps[name](profile=profile, overrides=overrides, job_id=job, **{arg: item})
                else:
                    task = comps[name](profile=profile, overrides=overrides, job_id=job, **args)
                task.set_caching_options(False).set_display_name(name)
                if not spec.inputs:
                    task.after(opened)
                if cluster:
                    apply_cluster_settings(task, spec, prof)
                outs[name] = task.output
            # `register` reads the gate's decision and registers nothing when it failed. (A `dsl.If` on the
            # gate's output inside the ExitHandler is not resolved by kfp.local 2.17: the condition's input is
            # looked up in the wrong scope and the branch is silently skipped.)

    return nexus_o


def compile_pipeline(prof: Profile, out: str) -> None:
    import os

    os.environ["NEXUS_IMAGE"] = prof.cluster.image
    from kfp import compiler

    compiler.Compiler().compile(
        build_pipeline(prof, cluster=True), package_path=out, pipeline_parameters={"profile": prof.name}
    )
