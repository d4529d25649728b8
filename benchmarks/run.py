"""Benchmarks (never asserted in tests): `make bench` writes benchmarks/results/latest.json and logs an MLflow
run tagged nexus.kind=benchmark.

    synthesis   raw `espeak-ng` CLI on the texts, one process (the baseline) and `workers` at a time, vs the
                project's synthesis (espeak-ng + resample + F0/rate measurement + WAV write) with 1 and
                `workers` processes: utterances/s, real-time factor, speed-up over raw single-process
                (target >= 1.8x on 2 cores)
    filter      texts/s on one core (paper 3.2 filters over fortunes)
    kfp.local   per-step overhead of a pipeline of no-op lightweight components
    codec/model codec2 encode/decode real-time factor, tiny-model train step time, codec intelligibility
    small       forward+backward tokens/s of the `small` model and its fraction of measured matmul FLOP/s

No `from __future__ import annotations`: the kfp.local benchmark defines components, and KFP reads real annotations.
"""

import json
import os
import platform
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).parent / "results" / "latest.json"
N_TEXTS = int(os.environ.get("NEXUS_BENCH_TEXTS", "120"))


def bench_texts(n: int) -> list[Any]:
    from components.common.config import load_profile
    from components.ingest.core import ingest_records

    prof = load_profile("small")
    recs = [r for r in ingest_records(prof) if r.task in ("asr", "chat") and len(r.text) < 200]
    return recs[:n]


def synthesis(results: dict[str, float]) -> None:
    from components.common.config import SynthesizeConfig
    from components.synthesize.core import synthesize_records

    recs = bench_texts(N_TEXTS)
    t = time.perf_counter()
    for r in recs:
        voice = "en-us" if r.lang == "en" else "cmn"
        subprocess.run(["espeak-ng", "-v", voice, "--stdout", r.text], capture_output=True, check=True)
    raw = time.perf_counter() - t
    results["synth_raw_espeak_utt_per_s"] = len(recs) / raw
    workers = SynthesizeConfig().workers
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each thread waits on its own espeak-ng process
        list(
            pool.map(
                lambda r: subprocess.run(
                    ["espeak-ng", "-v", "en-us" if r.lang == "en" else "cmn", "--stdout", r.text],
                    capture_output=True,
                    check=True,
                ),
                recs,
            )
        )
    results[f"synth_raw_espeak_w{workers}_utt_per_s"] = len(recs) / (time.perf_counter() - t)
    for workers in (1, SynthesizeConfig().workers):
        cfg = SynthesizeConfig(workers=workers, caption_fraction=0.0)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            utts, bad = synthesize_records(recs, Path(tmp), cfg, 0)
            dt = time.perf_counter() - t
        audio_s = sum(u.duration_s for u in utts)
        results[f"synth_project_w{workers}_utt_per_s"] = len(utts) / dt
        results[f"synth_project_w{workers}_rtf"] = dt / audio_s
        results[f"synth_project_w{workers}_speedup_vs_raw"] = raw / dt
        results[f"synth_project_w{workers}_quarantined"] = float(len(bad))


def filtering(results: dict[str, float]) -> None:
    import random

    from components.common.config import FilterConfig, IngestConfig
    from components.filter.core import filter_jsonl
    from components.ingest.core import fortunes

    texts = [r.text for r in fortunes(IngestConfig(), "en", 100000, random.Random(0))]
    texts += [r.text for r in fortunes(IngestConfig(), "zh", 100000, random.Random(0))]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts * 3))
        t = time.perf_counter()
        counts = filter_jsonl(src, Path(tmp) / "k.jsonl", Path(tmp) / "r.jsonl", FilterConfig())
        dt = time.perf_counter() - t
    results["filter_texts_per_s_one_core"] = counts.total / dt
    results["filter_texts"] = float(counts.total)


def kfp_overhead(results: dict[str, float]) -> None:
    from kfp import dsl, local

    @dsl.component(base_image="python:3.11")
    def noop(x: int) -> int:
        return x + 1

    @dsl.pipeline(name="bench")
    def chain(x: int = 0) -> None:
        a = noop(x=x)
        b = noop(x=a.output)
        noop(x=b.output)

    with tempfile.TemporaryDirectory() as tmp:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=tmp)
        t = time.perf_counter()
        chain()
        results["kfp_local_overhead_s_per_step"] = (time.perf_counter() - t) / 3


def codec_and_model(results: dict[str, float]) -> None:
    from components.synthesize.core import EspeakBackend, parse_speaker
    from model.builders import build_model
    from model.codec import Codec2Codec
    from model.processor import NexusOProcessor
    from model.tokenizer import train_tokenizer

    text = "the quick brown fox jumps over the lazy dog three seven one nine"
    wavs = [EspeakBackend().synthesize(text, "en", parse_speaker("en-us:p50:s170"), 16000) for _ in range(10)]
    audio_s = sum(len(w) for w in wavs) / 16000
    codec = Codec2Codec()
    t = time.perf_counter()
    codes = [codec.encode(w) for w in wavs]
    results["codec2_encode_rtf"] = (time.perf_counter() - t) / audio_s
    t = time.perf_counter()
    for c in codes:
        codec.decode(c)
    results["codec2_decode_rtf"] = (time.perf_counter() - t) / audio_s
    tok = train_tokenizer([text] * 20, 320)
    proc = NexusOProcessor.build(tok)
    model = build_model("tiny", len(tok))
    batch = proc.collate([proc.encode("asr", audio=w, response=text) for w in wavs[:4]])
    times = []
    for _ in range(5):
        t = time.perf_counter()
        model(**batch).loss.backward()  # type: ignore[union-attr]
        times.append(time.perf_counter() - t)
    results["tiny_train_step_s_b4"] = float(np.median(times))


def codec_intelligibility(results: dict[str, float]) -> None:
    """Whisper tiny.en WER on espeak-ng speech: original 16 kHz, band-limited to 8 kHz (codec2's rate) and after a
    codec2 round trip. The codec's own loss is round trip vs 8 kHz; 16 kHz vs 8 kHz is the sample-rate loss."""
    from components.common.asr import transcribe, whisper_model
    from components.evaluate.metrics import wer_en
    from components.synthesize.core import default_backend, parse_speaker
    from model.codec import Codec2Codec

    recs = [r for r in bench_texts(400) if r.lang == "en" and r.task == "asr"][:30]
    backend, codec, asr = default_backend(), Codec2Codec(), whisper_model()
    from components.synthesize.core import resample_to

    refs, orig, band, coded = [], [], [], []
    for i, r in enumerate(recs):
        wav = backend.synthesize(r.text, "en", parse_speaker(["en-us:p50:s170", "en-gb+f3:p60:s160"][i % 2]), 16000)
        refs.append(r.text)
        orig.append(transcribe(asr, wav))
        band.append(transcribe(asr, resample_to(resample_to(wav, 16000, 8000), 8000, 16000)))
        coded.append(transcribe(asr, codec.decode(codec.encode(wav))))
    results["codec2_wer_original"] = wer_en(refs, orig)
    results["codec2_wer_8k_bandlimited"] = wer_en(refs, band)
    results["codec2_wer_roundtrip"] = wer_en(refs, coded)
    results["codec2_wer_utterances"] = float(len(refs))


def small_model_throughput(results: dict[str, float]) -> None:
    """Forward+backward tokens/s of the `small` model on CPU, and its fraction of the machine's matmul FLOP/s
    (model FLOPs estimated as 6 x parameters x the tokens or frames each part processes; attention ignored)."""
    import torch

    from components.synthesize.core import default_backend, parse_speaker
    from model.builders import build_model
    from model.processor import NexusOProcessor
    from model.tokenizer import train_tokenizer

    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    results["matmul_gflops"] = 20 * 2 * n**3 / (time.perf_counter() - t) / 1e9
    text = "the quick brown fox jumps over the lazy dog three seven one nine"
    tok = train_tokenizer([text] * 20, 2000)
    proc = NexusOProcessor.build(tok)
    model = build_model("small", len(tok))
    wav = default_backend().synthesize(text, "en", parse_speaker("en-us:p50:s170"), 16000)
    batch = proc.collate([proc.encode("asr", audio=wav, response=text) for _ in range(4)])
    from model.modeling_nexus_o import encoder_frames, parameter_group

    tokens = int(batch["attention_mask"].sum())
    frames = sum(encoder_frames(int(f)) for f in batch["feature_lengths"])
    by_group: dict[str, int] = {}
    for name, p in model.named_parameters():
        if "embed_tokens" not in name and "embed_positions" not in name:  # lookups cost no FLOPs
            by_group[parameter_group(name)] = by_group.get(parameter_group(name), 0) + p.numel()
    # 6 x params x items each part really processes: LLM + LM head per token, encoder per frame, adapter per 5 frames
    work = (by_group["llm"] + by_group["lm_head"]) * tokens + by_group["audio_encoder"] * frames
    work += by_group["audio_adapter"] * (frames // 5)
    params = sum(p.numel() for p in model.parameters())
    model(**batch).loss.backward()  # type: ignore[union-attr]  # warm-up
    times = []
    for _ in range(3):
        t = time.perf_counter()
        model(**batch).loss.backward()  # type: ignore[union-attr]
        times.append(time.perf_counter() - t)
    step = float(np.median(times))
    results["small_params_m"] = params / 1e6
    results["small_fwd_bwd_tokens_per_s"] = tokens / step
    results["small_fwd_bwd_gflops"] = 6 * work / step / 1e9
    results["small_fraction_of_matmul_flops"] = results["small_fwd_bwd_gflops"] / results["matmul_gflops"]


def training_throughput(results: dict[str, float]) -> None:
    """Trainer throughput per stage (samples/s, tokens/s; median over steps after a warm-up step) for `tiny`
    and `small` with ZeRO-0 and ZeRO-2 on one CPU process; one vs two processes (torchrun) on `tiny`; and the
    7B profile's per-GPU model-state memory (DeepSpeed's estimators) for ZeRO-2 and ZeRO-3 on 8 GPUs."""
    import subprocess
    import sys
    import tempfile

    import torch

    from components.common.config import DeepSpeedConfig, StageConfig
    from components.common.paths import PROJECT_ROOT
    from components.synthesize.core import default_backend, parse_speaker
    from components.train.encoder_cache import cache_encoder_prefix
    from components.train.freeze import apply_freeze_policy, frozen_encoder_prefix
    from components.train.trainer import train_stage
    from model.builders import build_model
    from model.codec import Codec2Codec
    from model.processor import NexusOProcessor
    from model.tokenizer import train_tokenizer

    texts = ["three seven one nine", "what is two plus five", "the quick brown fox jumps over the lazy dog"] * 3
    tok = train_tokenizer(texts * 10, 2000)
    proc = NexusOProcessor.build(tok)
    tts, codec = default_backend(), Codec2Codec()
    wavs = [tts.synthesize(t, "en", parse_speaker("en-us:p50:s170"), 16000) for t in texts]
    per_stage = {
        0: lambda: [proc.encode("asr", spoken=t, response=t) for t in texts],
        1: lambda: [proc.encode("asr", audio=w, response=t) for t, w in zip(texts, wavs, strict=True)],
        2: lambda: [proc.encode("asr", audio=w, response=t) for t, w in zip(texts, wavs, strict=True)],
        3: lambda: [
            proc.encode("tts", text=t, response=t, codes=codec.encode(w)) for t, w in zip(texts, wavs, strict=True)
        ],
    }
    for size in ("tiny", "small"):
        for zero in (0, 2):
            for stage, make in per_stage.items():
                torch.manual_seed(0)
                model = build_model(size, len(tok))
                apply_freeze_policy(model, stage)
                samples = make()
                prefix = frozen_encoder_prefix(model)
                if prefix is not None:
                    cache_encoder_prefix(model, samples, prefix)
                seen: dict[str, list[float]] = {"samples_per_s": [], "tokens_per_s": []}
                cfg = StageConfig(steps=6, batch_size=4, lr=1e-4, warmup_steps=0, tasks=["asr"])
                with tempfile.TemporaryDirectory() as state:
                    train_stage(
                        model,
                        proc,
                        samples,
                        cfg,
                        DeepSpeedConfig(zero_stage=zero),  # type: ignore[arg-type]
                        0,
                        Path(state),
                        lambda k, v, s, seen=seen: seen[k].append(v) if k in seen and s > 0 else None,
                    )
                for k, v in seen.items():
                    results[f"train_{size}_stage{stage}_zero{zero}_{k}"] = float(np.median(v))
    # one vs two processes, same global batch (tiny; includes gloo all-reduce of the gradients)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            launcher = (
                [sys.executable] if n == 1 else [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
            )
            out = Path(tmp) / f"p{n}.json"
            # this process already joined a (one-rank) process group: its rendezvous variables must not leak
            dist_vars = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
            env = {k: v for k, v in os.environ.items() if k not in dist_vars} | {"OMP_NUM_THREADS": str(2 // n)}
            proc = subprocess.run(
                [*launcher, "-m", "tests.train_helper", "--state", f"{tmp}/s{n}", "--out", str(out), "--steps", "12"],
                capture_output=True,
                text=True,
                env=env,
                cwd=PROJECT_ROOT,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"{n}-process training run failed:\n{proc.stderr[-3000:]}")
            results[f"train_tiny_{n}proc_samples_per_s"] = json.loads(out.read_text())["samples_per_s"]
    # 7B: model-state memory per GPU (params + grads + Adam states, no activations), 8 GPUs on one node
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    with torch.device("meta"):
        big = build_model("7b", 151668)
    total = sum(p.numel() for p in big.parameters())
    largest = max(p.numel() for p in big.parameters())
    _, gpu2 = estimate_zero2_model_states_mem_needs(total, num_gpus_per_node=8, cpu_offload=False)
    _, gpu3, _ = estimate_zero3_model_states_mem_needs(
        total, largest, num_gpus_per_node=8, cpu_offload=False, cpu_offload_params=False
    )
    results["params_7b_b"] = total / 1e9
    results["mem_7b_zero2_per_gpu_gib"] = gpu2 / 2**30
    results["mem_7b_zero3_per_gpu_gib"] = gpu3 / 2**30


def evaluation_throughput(results: dict[str, float]) -> None:
    """Transcription utterances/s of the `small` model (random weights, up to 24 greedy tokens each):
    the evaluate step's batched KV-cache generation (batch 16, left padding) vs one prompt at a time."""
    import torch

    from components.evaluate.core import generate_answers
    from components.synthesize.core import default_backend, parse_speaker
    from model.builders import build_model
    from model.processor import NexusOProcessor
    from model.tokenizer import train_tokenizer

    texts = [
        f"{a} {b} {c}" for a in ("three", "seven", "one", "nine") for b in ("two", "five") for c in ("six", "zero")
    ]
    tok = train_tokenizer(texts * 5, 500)
    proc = NexusOProcessor.build(tok)
    torch.manual_seed(0)
    model = build_model("small", len(tok)).eval()
    backend = default_backend()
    prompts = [
        proc.encode("asr", audio=backend.synthesize(t, "en", parse_speaker("en-us:p50:s170"), 16000)) for t in texts
    ]
    for batch in (16, 1):  # random weights rarely emit the end token: both ways decode ~the full budget
        generate_answers(model, proc, prompts[:2], 4, batch)  # warm-up
        t = time.perf_counter()
        generate_answers(model, proc, prompts, 24, batch)
        results[f"eval_small_b{batch}_utt_per_s"] = len(prompts) / (time.perf_counter() - t)
    results["eval_small_batched_speedup"] = results["eval_small_b16_utt_per_s"] / results["eval_small_b1_utt_per_s"]


BENCHMARKS = {
    "synthesis": synthesis,
    "filter": filtering,
    "kfp": kfp_overhead,
    "codec_model": codec_and_model,
    "codec_intelligibility": codec_intelligibility,
    "small_model": small_model_throughput,
    "training": training_throughput,
    "evaluation": evaluation_throughput,
}


def main() -> None:
    """`python -m benchmarks.run [--only training,evaluation]`: all benchmarks, or the named ones merged into
    the existing results file."""
    import argparse

    from components.common.paths import set_offline_env

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    set_offline_env()
    results: dict[str, float] = {}
    if args.only and OUT.exists():  # a partial run updates the full results
        results = json.loads(OUT.read_text()).get("results", {})
    for name in names:
        t = time.perf_counter()
        BENCHMARKS[name](results)
        print(f"{name}: {time.perf_counter() - t:.1f}s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "results": results}, indent=2))
    from components.common.tracking import init_mlflow

    mlflow = init_mlflow()
    with mlflow.start_run(run_name="benchmarks", tags={"nexus.kind": "benchmark"}):
        mlflow.log_metrics(results)
        mlflow.log_artifact(str(OUT))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
