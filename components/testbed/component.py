"""KFP wrapper of the `testbed` step (logic: `core.py`, run via `components.common.step.run_step`)."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def testbed(profile: str, overrides: str, job_id: str, dataset: str) -> str:
    from components.common.step import run_step

    return run_step("testbed", profile, overrides, job_id, {"dataset": dataset})
