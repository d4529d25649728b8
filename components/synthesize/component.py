"""KFP wrappers of the synthesis steps: plan -> ParallelFor(shard) -> merge (logic: `core.py`)."""

from typing import List  # noqa: UP035  (KFP reads typing.List annotations)

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def synthesize_plan(profile: str, overrides: str, job_id: str, texts: str) -> List[str]:  # noqa: UP006
    from components.common.registry import get_step
    from components.common.step import fan_out_items, run_step

    ref = run_step("synthesize_plan", profile, overrides, job_id, {"texts": texts})
    return fan_out_items(get_step("synthesize_shard"), ref)


@dsl.component(base_image=BASE_IMAGE)
def synthesize_shard(profile: str, overrides: str, job_id: str, shard: str) -> str:
    from components.common.step import run_step

    return run_step("synthesize_shard", profile, overrides, job_id, {"shard": shard})


@dsl.component(base_image=BASE_IMAGE)
def synthesize(profile: str, overrides: str, job_id: str, shards: List[str]) -> str:  # noqa: UP006
    import json

    from components.common.step import run_step

    return run_step("synthesize", profile, overrides, job_id, {"shards": json.dumps(shards)})
