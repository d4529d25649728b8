"""A tiny stage-1 training run as its own process, for the crash/resume and multi-process tests.

    python -m tests.train_helper --state DIR --out losses.json [--steps 8] [--save-every 2] [--sleep 0.3]
    torchrun --nproc_per_node 2 -m tests.train_helper ...      # same global batch over two processes

Everything is rebuilt deterministically in each process: tokenizer, espeak speech, model (seeded).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=0)
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds per step, so a test can kill mid-run")
    args = ap.parse_args()

    import torch

    from components.common.config import DeepSpeedConfig, StageConfig
    from components.synthesize.core import EspeakBackend, parse_speaker
    from components.train.freeze import apply_freeze_policy
    from components.train.trainer import train_stage
    from model.builders import build_model
    from model.processor import NexusOProcessor
    from model.tokenizer import train_tokenizer

    torch.set_num_threads(1)
    texts = ["three seven one nine", "what is two plus five", "hello world", "four two", "nine nine eight"]
    tok = train_tokenizer(texts * 5, 320)
    proc = NexusOProcessor.build(tok)
    tts = EspeakBackend()
    speakers = ["en-us:p50:s170", "en-gb:p40:s150"]
    samples = [
        proc.encode("asr", audio=tts.synthesize(t, "en", parse_speaker(speakers[i % 2]), 16000), response=t)
        for i, t in enumerate(texts + texts[:3])
    ]
    torch.manual_seed(0)
    model = build_model("tiny", len(tok))
    apply_freeze_policy(model, 2)
    cfg = StageConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=3e-3,
        warmup_steps=1,
        tasks=["asr"],
    )

    speed: list[float] = []

    def log(key: str, value: float, step: int) -> None:
        if key == "train_loss" and args.sleep:
            time.sleep(args.sleep)
        if key == "samples_per_s" and step > 0:
            speed.append(value)

    report = train_stage(model, proc, samples, cfg, DeepSpeedConfig(), 7, args.state, log, args.save_every)
    if int(os.environ.get("RANK", "0")) == 0:
        digest = float(sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad))
        args.out.write_text(
            json.dumps(
                {
                    "losses": report.losses,
                    "resumed_from": report.resumed_from_step,
                    "param_sum": digest,
                    "samples_per_s": sorted(speed)[len(speed) // 2] if speed else 0.0,
                }
            )
        )


if __name__ == "__main__":
    main()
