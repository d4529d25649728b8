"""KFP wrapper of the `filter` step (logic: `core.py`, run via `components.common.step.run_step`)."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def filter(profile: str, overrides: str, job_id: str, texts: str) -> str:
    from components.common.step import run_step

    return run_step("filter", profile, overrides, job_id, {"texts": texts})
