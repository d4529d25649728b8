"""KFP wrappers of the pipeline's bookends: open the MLflow parent run, close it in the exit handler."""

from kfp import dsl

from components.common.kfp_base import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def open_run(profile: str, overrides: str, job_id: str) -> str:
    from components.common.config import load_profile
    from components.common.paths import set_offline_env
    from components.common.tracking import open_parent_run

    set_offline_env()
    prof = load_profile(profile, overrides)
    return open_parent_run(job_id, prof.name, prof.resolved(), prof.config_hash())


@dsl.component(base_image=BASE_IMAGE)
def close_run(job_id: str, status: dsl.PipelineTaskFinalStatus) -> None:
    from components.common.paths import set_offline_env
    from components.common.tracking import close_parent_run

    set_offline_env()
    close_parent_run(job_id, status.state, status.error_message)
