"""The one stage registry. The KFP DAG (`pipelines/pipeline.py`) and `dvc.yaml` are both generated from it,
so they cannot drift (a test compares the committed `dvc.yaml` to `pipelines.dvcgen.render()`).

Each step: library function (`module:function`, signature `run(ctx: StepContext) -> StepResult`), named
inputs (input name -> producing step), the profile sections its content key covers, the code paths its
code version covers, and the kind of node it needs on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

COMMON_CODE = ("components/common",)
MODEL_CODE = ("model",)


@dataclass(frozen=True)
class StepSpec:
    name: str
    func: str
    inputs: dict[str, str]
    params: tuple[str, ...]
    code: tuple[str, ...]
    resources: Literal["cpu", "gpu_train", "gpu_eval"] = "cpu"
    description: str = ""
    # fan-out: this step runs once per item of its single input; `items` (module:function) turns the
    # producing step's reference into the list of item references (a dsl.ParallelFor on a cluster)
    items: str | None = None
    # inputs that receive the list of all outputs of a fan-out step (dsl.Collected)
    collect: tuple[str, ...] = ()
    # content-key material from outside the inputs and profile (module:function(profile) -> dict), e.g. the
    # md5 of a folder the profile points at
    key_extra: str | None = None
    # reads the models volume on a cluster (pretrained checkpoints, the labeler, recordings); GPU steps always do
    models_volume: bool = False

    @property
    def code_paths(self) -> tuple[str, ...]:
        return (*COMMON_CODE, *self.code)


STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "ingest",
        "components.ingest.core:run",
        {},
        ("seed", "ingest"),
        ("components/ingest",),
        description="Raw text: Debian fortunes (en/zh) + seeded micro-world facts, split by stable hash.",
    ),
    StepSpec(
        "filter",
        "components.filter.core:run",
        {"texts": "ingest"},
        ("filter",),
        ("components/filter",),
        description="Paper 3.2 text filters: encoding, empty, URL, file path, LaTeX, length, non-text ratio.",
    ),
    StepSpec(
        "judge",
        "components.judge.core:run",
        {"texts": "filter"},
        ("judge",),
        ("components/judge",),
        description="LLM judge (sentence embeddings locally) and optional rewrite by an OpenAI-compatible LLM.",
    ),
    StepSpec(
        "synthesize_plan",
        "components.synthesize.core:run_plan",
        {"texts": "judge"},
        ("synthesize",),
        ("components/synthesize",),
        description="Cut the texts into shards of `synthesize.shard_size`.",
    ),
    StepSpec(
        "synthesize_shard",
        "components.synthesize.core:run_shard",
        {"shard": "synthesize_plan"},
        ("seed", "synthesize"),
        ("components/synthesize",),
        description="espeak-ng speech for one shard, 16 kHz mono, sampled speakers (dsl.ParallelFor).",
        items="components.synthesize.core:shard_refs",
    ),
    StepSpec(
        "synthesize",
        "components.synthesize.core:run_merge",
        {"shards": "synthesize_shard"},
        ("synthesize",),
        ("components/synthesize",),
        description="Merge the shard manifests; speaker-pool spread report.",
        collect=("shards",),
    ),
    StepSpec(
        "validate",
        "components.validate.core:run",
        {"manifest": "synthesize"},
        ("validate",),
        ("components/validate",),
        description="Great Expectations suite over the manifest and audio.",
    ),
    StepSpec(
        "version",
        "components.version.core:run",
        {"manifest": "validate"},
        ("version",),
        ("components/version",),
        description="Publish the dataset under data/ and version it with DVC.",
    ),
    StepSpec(
        "train_stage0",
        "components.train.core:run_stage0",
        {"dataset": "version"},
        ("seed", "model", "train"),
        ("components/train", *MODEL_CODE),
        "gpu_train",
        "Initial model: local sizes pretrain their backbone (LM + vision); 7b assembles pretrained parts.",
    ),
    StepSpec(
        "train_stage1",
        "components.train.core:run_stage1",
        {"dataset": "version", "checkpoint": "train_stage0"},
        ("seed", "model", "train"),
        ("components/train", *MODEL_CODE),
        "gpu_train",
        "Audio alignment: audio encoder + adapter train.",
    ),
    StepSpec(
        "train_stage2",
        "components.train.core:run_stage2",
        {"dataset": "version", "checkpoint": "train_stage1"},
        ("seed", "model", "train"),
        ("components/train", *MODEL_CODE),
        "gpu_train",
        "Audio SFT: adapters + LLM train, encoders frozen.",
    ),
    StepSpec(
        "train_stage3",
        "components.train.core:run_stage3",
        {"dataset": "version", "checkpoint": "train_stage2"},
        ("seed", "model", "train"),
        ("components/train", *MODEL_CODE),
        "gpu_train",
        "Audio output: only the AR audio decoder trains.",
    ),
    StepSpec(
        "testbed",
        "components.testbed.core:run",
        {"dataset": "version"},
        ("seed", "testbed"),
        ("components/testbed", "components/synthesize", "components/train/data.py"),
        description="Real-scenario ASR testbed: degraded held-out audio + recordings labelled by an off-the-shelf ASR.",
        key_extra="components.testbed.core:recordings_key",
        models_volume=True,
    ),
    StepSpec(
        "evaluate",
        "components.evaluate.core:run",
        {
            "dataset": "version",
            "checkpoint": "train_stage3",
            "testbed": "testbed",
            "stage0": "train_stage0",
            "stage1": "train_stage1",
        },
        ("evaluate",),
        ("components/evaluate", "components/train", *MODEL_CODE),
        "gpu_eval",
        description="Paper tables: ASR (+ testbed), S2TT, QA, vision, speech output, alignment; baselines beside.",
    ),
    StepSpec(
        "gate",
        "components.gate.core:run",
        {"evaluation": "evaluate"},
        ("gate",),
        ("components/gate",),
        description="Absolute thresholds from the profile; failing blocks registration, not the run.",
    ),
    StepSpec(
        "register",
        "components.register.core:run",
        {"checkpoint": "train_stage3", "evaluation": "evaluate", "gate": "gate", "dataset": "version"},
        ("register",),
        ("components/register", *MODEL_CODE),
        description="models-from-code pyfunc registered as `nexus-o`, alias champion/challenger.",
    ),
)

BY_NAME = {s.name: s for s in STEPS}


def get_step(name: str) -> StepSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown step {name!r}; steps are: {', '.join(BY_NAME)}") from None
