"""Benchmarks (never asserted in tests): `make bench` writes benchmarks/results/latest.json and logs to MLflow.

Measures: espeak-ng synthesis real-time factor, codec2 encode/decode real-time factor, tiny model
train-step time (forward + backward, batch 4) on this machine.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).parent / "results" / "latest.json"


def main() -> None:
    from components.synthesize.core import EspeakBackend
    from model.builders import build_model
    from model.codec import Codec2Codec
    from model.processor import NexusOProcessor
    from model.tokenizer import train_tokenizer

    results: dict[str, float] = {}
    backend = EspeakBackend()
    text = "the quick brown fox jumps over the lazy dog three seven one nine"
    t = time.perf_counter()
    wavs = [backend.synthesize(text, "en", "en-us:p50:s170", 16000) for _ in range(10)]
    audio_s = sum(len(w) for w in wavs) / 16000
    results["espeak_rtf"] = (time.perf_counter() - t) / audio_s
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
    results["torch_threads"] = float(torch.get_num_threads())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.platform(), "results": results}, indent=2))
    from components.common.tracking import init_mlflow

    mlflow = init_mlflow()
    with mlflow.start_run(run_name="benchmarks", tags={"nexus.kind": "benchmark"}):
        mlflow.log_metrics(results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
