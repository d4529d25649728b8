"""One DeepSpeed trainer for all stages. A stage = data + freeze policy + hyperparameters (profile).

Locally: DeepSpeed's CPU accelerator (DS_ACCELERATOR=cpu), gloo, ZeRO-2, a torch AdamW (no DeepSpeed op
compiles). On a cluster the same code runs under `deepspeed`/torchrun on GPUs (NCCL). Loss on assistant
tokens only (labels), stage 3 on the delayed codebooks. Length-bucketed batches, gradient accumulation,
warmup + cosine schedule, clipping, seeded. DeepSpeed resume state (`ds_state/`, pickle-based) is written
every `save_every` steps into the step's own keyed folder and only ever loaded from there.

    DS_ACCELERATOR=cpu python -m components.train.trainer  # (called by components/train/core.py)
"""

from __future__ import annotations

import math
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.common.config import DeepSpeedConfig, StageConfig
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.processor import NexusOProcessor, Sample


@dataclass
class TrainReport:
    losses: list[float]
    resumed_from_step: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_distributed() -> None:
    """Single-process defaults for local runs; a launcher (torchrun/deepspeed) sets these on a cluster."""
    import deepspeed

    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("DS_ACCELERATOR") != "cpu" else "gloo"
    deepspeed.init_distributed(dist_backend=backend)


def ds_config(stage: StageConfig, ds: DeepSpeedConfig) -> dict[str, Any]:
    return {
        "train_micro_batch_size_per_gpu": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "gradient_clipping": ds.gradient_clipping,
        "zero_optimization": {"stage": ds.zero_stage},
        "bf16": {"enabled": ds.precision == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warmup then cosine decay to 10% of the peak."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def length_bucketed_batches(samples: list[Sample], batch_size: int, rng: random.Random) -> list[list[Sample]]:
    """Shuffle, then sort within chunks of 8 batches by length so a batch holds similar lengths."""
    order = samples[:]
    rng.shuffle(order)
    chunk = batch_size * 8
    batches: list[list[Sample]] = []
    for i in range(0, len(order), chunk):
        part = sorted(order[i : i + chunk], key=lambda s: len(s.input_ids))
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def train_stage(
    model: NexusOForConditionalGeneration,
    proc: NexusOProcessor,
    samples: list[Sample],
    stage: StageConfig,
    ds: DeepSpeedConfig,
    seed: int,
    state_dir: Path,
    log_metric: Callable[[str, float, int], object],
    save_every: int = 0,
) -> TrainReport:
    """Train the parameters that have requires_grad for `stage.steps` optimizer steps."""
    import deepspeed

    if not samples:
        raise ValueError("no training samples for this stage; check the profile's tasks and the dataset splits")
    init_distributed()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(stage.warmup_steps, stage.steps))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config(stage, ds)
    )
    start = 0
    if (state_dir / "latest").exists():  # resume a crashed run of this very step (same content key)
        _, client = engine.load_checkpoint(str(state_dir))
        start = int((client or {}).get("step", 0))
        rng = random.Random(seed + start)  # a fresh, still seeded data order for the remaining steps
    engine.train()
    losses: list[float] = []
    batches: list[list[Sample]] = []
    micro = 0
    step = start
    while step < stage.steps:
        if not batches:
            batches = length_bucketed_batches(samples, stage.batch_size, rng)
        batch = {k: v.to(engine.device) for k, v in proc.collate(batches.pop()).items()}
        out = engine(**batch)
        engine.backward(out.loss)
        engine.step()
        micro += 1
        if micro % stage.grad_accum == 0:
            loss = float(out.loss.detach())
            losses.append(loss)
            log_metric("train_loss", loss, step)
            log_metric("lr", float(scheduler.get_last_lr()[0]), step)
            step += 1
            if save_every and step % save_every == 0 and step < stage.steps:
                engine.save_checkpoint(str(state_dir), client_state={"step": step})
    return TrainReport(losses=losses, resumed_from_step=start)
