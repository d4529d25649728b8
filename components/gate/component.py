"""KFP wrapper of the `gate` step (its decision file is read by `register`)."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def gate(profile: str, overrides: str, job_id: str, evaluation: str) -> str:
    from components.common.step import run_step

    return run_step("gate", profile, overrides, job_id, {"evaluation": evaluation})
