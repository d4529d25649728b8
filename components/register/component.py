"""KFP wrapper of the `register` step (logic: `core.py`, run via `components.common.step.run_step`)."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def register(
    profile: str, overrides: str, job_id: str, checkpoint: str, evaluation: str, gate: str, dataset: str
) -> str:
    from components.common.step import run_step

    return run_step(
        "register",
        profile,
        overrides,
        job_id,
        {"checkpoint": checkpoint, "evaluation": evaluation, "gate": gate, "dataset": dataset},
    )
