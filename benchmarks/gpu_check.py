"""GPU check of the cluster training path: DeepSpeed ZeRO-2, bf16, NCCL, on one CUDA device.

Not run by CI (no GPU there); run on a GPU machine with the repo's Python packages available:

    DS_ACCELERATOR=cuda python benchmarks/gpu_check.py OUT_DIR [--skip-7b]
    python benchmarks/gpu_check.py OUT_DIR --cpu-dry-run     # the script itself, 3 steps on CPU

1. `small` model, stage-2 freeze policy, the project's trainer (`components/train/trainer.py`) with ZeRO-2 and
   bf16 for 40 steps on synthetic samples (noise audio, random images, digit-word answers): the loss must be
   finite and fall, frozen parameters must stay bit-identical; samples/s reported.
2. The 7B configuration (Qwen2.5-VL-7B + Whisper-large-v3 sizes, random weights built in bf16 on the GPU):
   one ZeRO-2 bf16 step of stage 1 (audio encoder + adapter train) and of stage 3 (audio decoder trains) on
   a 20 s utterance; peak GPU memory next to DeepSpeed's ZeRO-2 estimate for the trainable parameters.

Writes OUT_DIR/gpu_check.json and prints it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.config import DeepSpeedConfig, StageConfig
from components.train.freeze import apply_freeze_policy, params_digest
from components.train.trainer import train_stage
from model.builders import build_model
from model.processor import NexusOProcessor, Sample
from model.tokenizer import train_tokenizer

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def samples(proc: NexusOProcessor, n: int, seed: int, seconds: float = 2.0) -> list[Sample]:
    """Synthetic but learnable: the answer is a function of a tone's frequency band / an image's brightness."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(n):
        d = int(rng.integers(0, 10))
        wav = (0.3 * np.sin(2 * np.pi * (200 + 150 * d) * t) + 0.02 * rng.normal(size=t.size)).astype(np.float32)
        if i % 4 == 3:
            img = Image.fromarray(np.full((56, 56, 3), 25 * d, dtype=np.uint8))
            out.append(proc.encode("vqa", image=img, text="what digit", response=WORDS[d]))
        else:
            out.append(proc.encode("asr", audio=wav, response=WORDS[d]))
    return out


def check_small(out_dir: Path, steps: int = 40) -> dict[str, float]:
    tok = train_tokenizer([" ".join(WORDS), "what digit", "transcribe the audio"] * 10, 320)
    proc = NexusOProcessor.build(tok)
    torch.manual_seed(0)
    model = build_model("small", len(tok)).to(torch.bfloat16)  # as the bf16 engine will (see run_stage)
    apply_freeze_policy(model, 2)
    frozen = params_digest(model, trainable=False)
    cfg = StageConfig(steps=steps, batch_size=16, lr=1e-3, warmup_steps=4, tasks=["asr", "vqa"])
    log: list[tuple[str, float, int]] = []
    start = time.perf_counter()
    report = train_stage(
        model,
        proc,
        samples(proc, 256, 0),
        cfg,
        DeepSpeedConfig(zero_stage=2, precision="bf16"),
        1234,
        out_dir / "ds_small",
        lambda k, v, s: log.append((k, v, s)),
    )
    seconds = time.perf_counter() - start
    losses = report.losses
    model_device = next(model.parameters()).device
    assert all(np.isfinite(losses)), losses
    first, last = float(np.mean(losses[:5])), float(np.mean(losses[-5:]))
    return {
        "small_device_cuda": float(model_device.type == "cuda"),
        "small_dtype_bf16": float(next(model.parameters()).dtype == torch.bfloat16),
        "small_loss_first5": first,
        "small_loss_last5": last,
        "small_loss_fell": float(last < first),
        "small_frozen_unchanged": float(params_digest(model, trainable=False) == frozen),
        "small_samples_per_s": float(np.mean([v for k, v, _ in log if k == "samples_per_s"][steps // 4 :])),
        "small_train_s": seconds,
    }


def check_7b(out_dir: Path) -> dict[str, float]:
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    tok = train_tokenizer([" ".join(WORDS), "transcribe the audio"] * 10, 320)
    proc = NexusOProcessor.build(tok, num_mel_bins=128)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = build_model("7b", 151_936)
    torch.set_default_dtype(torch.float32)
    result: dict[str, float] = {"b7_params_b": sum(p.numel() for p in model.parameters()) / 1e9}
    rng = np.random.default_rng(1)
    wav = (0.1 * rng.normal(size=16000 * 20)).astype(np.float32)
    for stage in (1, 3):
        trainable, _ = apply_freeze_policy(model, stage)
        if stage == 1:
            batch = [proc.encode("asr", audio=wav, response="three seven one nine")]
        else:
            codes = rng.integers(0, 1024, size=(8, 20 * 50))
            batch = [proc.encode("tts", text="three seven one nine", response="three seven one nine", codes=codes)]
        torch.cuda.reset_peak_memory_stats()
        cfg = StageConfig(steps=2, batch_size=1, lr=1e-5, warmup_steps=0, tasks=["asr"])
        start = time.perf_counter()
        report = train_stage(
            model,
            proc,
            batch,
            cfg,
            DeepSpeedConfig(zero_stage=2, precision="bf16"),
            1234,
            out_dir / f"ds_7b_{stage}",
            lambda k, v, s: None,
            objective="audio" if stage == 3 else "total",
        )
        peak = torch.cuda.max_memory_allocated() / 2**30
        est = estimate_zero2_model_states_mem_needs(trainable, num_gpus_per_node=1, num_nodes=1, cpu_offload=False)
        # estimate: (cpu bytes, gpu bytes) for the trainable parameters' model states; frozen bf16 weights on top
        frozen_bf16 = (sum(p.numel() for p in model.parameters()) - trainable) * 2 / 2**30
        result |= {
            f"b7_stage{stage}_trainable_b": trainable / 1e9,
            f"b7_stage{stage}_loss": float(report.losses[-1]),
            f"b7_stage{stage}_peak_gib": peak,
            f"b7_stage{stage}_zero2_states_estimate_gib": est[1] / 2**30,
            f"b7_stage{stage}_frozen_bf16_gib": frozen_bf16,
            f"b7_stage{stage}_two_steps_s": time.perf_counter() - start,
        }
    return result


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "build/gpu_check")
    out_dir.mkdir(parents=True, exist_ok=True)
    dry = "--cpu-dry-run" in sys.argv  # the script's own smoke test on a CPU machine: 3 steps, no 7B
    if not dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a GPU machine (CI runs the CPU tests)")
    os.environ.setdefault("DS_ACCELERATOR", "cpu" if dry else "cuda")
    result: dict[str, object] = {
        "device": "cpu (dry run)" if dry else torch.cuda.get_device_name(0),
        "torch": torch.__version__,
    }
    result |= check_small(out_dir, steps=3 if dry else 40)
    print(json.dumps(result), flush=True)
    if not dry and "--skip-7b" not in sys.argv:
        result |= check_7b(out_dir)
    (out_dir / "gpu_check.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
