"""KFP wrappers of the training stages: 0 initial model / backbone bootstrap, 1-3 the paper's (logic: core.py)."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def train_stage0(profile: str, overrides: str, job_id: str, dataset: str) -> str:
    from components.common.step import run_step

    return run_step("train_stage0", profile, overrides, job_id, {"dataset": dataset})


@dsl.component(base_image=BASE_IMAGE)
def train_stage1(profile: str, overrides: str, job_id: str, dataset: str, checkpoint: str) -> str:
    from components.common.step import run_step

    return run_step("train_stage1", profile, overrides, job_id, {"dataset": dataset, "checkpoint": checkpoint})


@dsl.component(base_image=BASE_IMAGE)
def train_stage2(profile: str, overrides: str, job_id: str, dataset: str, checkpoint: str) -> str:
    from components.common.step import run_step

    return run_step("train_stage2", profile, overrides, job_id, {"dataset": dataset, "checkpoint": checkpoint})


@dsl.component(base_image=BASE_IMAGE)
def train_stage3(profile: str, overrides: str, job_id: str, dataset: str, checkpoint: str) -> str:
    from components.common.step import run_step

    return run_step("train_stage3", profile, overrides, job_id, {"dataset": dataset, "checkpoint": checkpoint})
