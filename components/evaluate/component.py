"""KFP wrapper of the `evaluate` step (logic: `core.py`, run via `components.common.step.run_step`)."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def evaluate(
    profile: str, overrides: str, job_id: str, dataset: str, checkpoint: str, testbed: str, stage0: str, stage1: str
) -> str:
    from components.common.step import run_step

    inputs = {"dataset": dataset, "checkpoint": checkpoint, "testbed": testbed, "stage0": stage0, "stage1": stage1}
    return run_step("evaluate", profile, overrides, job_id, inputs)
