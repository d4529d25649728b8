"""KFP wrapper of the `judge` step (logic: `core.py`)."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def judge(profile: str, overrides: str, job_id: str, texts: str) -> str:
    from components.common.step import run_step

    return run_step("judge", profile, overrides, job_id, {"texts": texts})
