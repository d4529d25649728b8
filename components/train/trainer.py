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
import shutil
import socket
import time
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


def ds_config(stage: StageConfig, ds: DeepSpeedConfig, world: int = 1) -> dict[str, Any]:
    """`stage.batch_size` is the GLOBAL micro-batch: each of `world` ranks takes batch_size / world samples."""
    if stage.batch_size % world:
        raise ValueError(f"batch_size {stage.batch_size} is not divisible by the {world} training processes")
    return {
        "train_micro_batch_size_per_gpu": stage.batch_size // world,
        "train_batch_size": stage.batch_size * stage.grad_accum,
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


class BatchPlan:
    """The data order as a pure function of (seed, micro-batch index): epoch e is `length_bucketed_batches`
    with Random(seed + e); global micro-batches hold `batch_size * world` samples and rank r takes its slice.
    A resumed run therefore continues exactly where the interrupted one stopped, and one process with a
    global batch B sees the same samples per optimizer step as W processes with B / W each.
    """

    def __init__(self, samples: list[Sample], batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.samples, self.batch_size, self.seed, self.rank, self.world = samples, batch_size, seed, rank, world
        self._epoch = -1
        self._batches: list[list[Sample]] = []

    def micro_batch(self, index: int) -> list[Sample]:
        """This rank's samples of global micro-batch `index` (0-based over the whole run)."""
        n = max(1, math.ceil(len(self.samples) / (self.batch_size * self.world)))
        epoch, i = divmod(index, n)
        if epoch != self._epoch:
            rng = random.Random(self.seed + epoch)
            self._batches, self._epoch = length_bucketed_batches(self.samples, self.batch_size * self.world, rng), epoch
        batch = self._batches[i % len(self._batches)]
        mine = batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return mine or batch[: self.batch_size]  # a short last batch: ranks without rows repeat the first ones


def token_weight(labels: torch.Tensor, world: int) -> float:
    """Scale a rank's token-mean loss by its share of the global micro-batch's label tokens, so that the
    ranks' averaged gradients equal the gradient of the global token-mean (1.0 for one process)."""
    import torch.distributed as dist

    if world == 1:
        return 1.0
    local = torch.tensor([float((labels[:, 1:] != -100).sum())])
    total = local.clone()
    dist.all_reduce(total)
    return float(local) * world / max(float(total), 1.0)


def save_state(engine: Any, state_dir: Path, step: int) -> None:
    """DeepSpeed state under tag `step{N}`, then the `latest_step` pointer is written and renamed into place:
    a crash while saving leaves the previous complete checkpoint in charge. Older tags are removed."""
    import torch.distributed as dist

    tag = f"step{step}"
    engine.save_checkpoint(str(state_dir), tag=tag, client_state={"step": step}, save_latest=False)
    if not dist.is_initialized() or dist.get_rank() == 0:
        tmp = state_dir / "latest_step.tmp"
        tmp.write_text(tag)
        os.replace(tmp, state_dir / "latest_step")
        for old in state_dir.glob("step*"):
            if old.is_dir() and old.name != tag:
                shutil.rmtree(old, ignore_errors=True)


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
    objective: str = "total",
) -> TrainReport:
    """Train the parameters that have requires_grad for `stage.steps` optimizer steps.

    `objective`: "total" (text + audio losses) or "audio" (stage 3: only the decoder trains, so the frozen
    LLM's text loss is left out of the objective and the logged loss).
    Per optimizer step it logs `train_loss` (mean over the accumulated micro-batches and ranks), `lr`,
    `grad_norm` (before clipping), `samples_per_s` and `tokens_per_s` (all ranks).
    """
    import deepspeed
    import torch.distributed as dist

    if not samples:
        raise ValueError("no training samples for this stage; check the profile's tasks and the dataset splits")
    init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(param_groups(model, stage), lr=stage.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(stage.warmup_steps, stage.steps))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config(stage, ds, world)
    )
    start = 0
    pointer = state_dir / "latest_step"
    if pointer.exists():  # resume a crashed run of this very step (same content key)
        _, client = engine.load_checkpoint(str(state_dir), tag=pointer.read_text().strip())
        start = int((client or {}).get("step", 0))
    plan = BatchPlan(samples, stage.batch_size // world, seed, rank, world)
    try:
        return _train_loop(
            engine, scheduler, proc, plan, stage, start, world, state_dir, log_metric, save_every, objective
        )
    finally:
        # ZeRO registers gradient hooks on the parameters; a later engine on the same model (the next phase)
        # would otherwise run this one's stale hooks too
        engine.destroy()


def param_groups(model: torch.nn.Module, stage: StageConfig) -> list[dict[str, Any]]:
    """Trainable parameters as optimizer groups, one per learning rate (`stage.lr` x the group's `lr_scale`)."""
    from model.modeling_nexus_o import parameter_group

    by_lr: dict[float, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            by_lr.setdefault(stage.lr * stage.lr_scale.get(parameter_group(name), 1.0), []).append(p)  # type: ignore[call-overload]
    return [{"params": ps, "lr": lr} for lr, ps in sorted(by_lr.items(), reverse=True)]


def _train_loop(
    engine: Any,
    scheduler: Any,
    proc: NexusOProcessor,
    plan: BatchPlan,
    stage: StageConfig,
    start: int,
    world: int,
    state_dir: Path,
    log_metric: Callable[[str, float, int], object],
    save_every: int,
    objective: str,
) -> TrainReport:
    import torch.distributed as dist

    engine.train()
    losses: list[float] = []
    for step in range(start, stage.steps):
        t0, acc, n_samples, n_tokens = time.perf_counter(), 0.0, 0, 0
        for j in range(stage.grad_accum):
            rows = plan.micro_batch(step * stage.grad_accum + j)
            batch = {k: v.to(engine.device) for k, v in proc.collate(rows).items()}
            out = engine(**batch)
            weight = token_weight(batch["labels"], world)
            loss = out.audio_loss if objective == "audio" else out.loss
            engine.backward(loss * weight)
            engine.step()
            acc += float(loss.detach()) * weight / stage.grad_accum
            n_samples += len(rows)
            n_tokens += int(batch["attention_mask"].sum())
        totals = torch.tensor([acc, n_samples, n_tokens], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(totals)
        loss = float(totals[0]) / world
        elapsed = time.perf_counter() - t0
        losses.append(loss)
        norm = engine.get_global_grad_norm()
        log_metric("train_loss", loss, step)
        log_metric("lr", float(scheduler.get_last_lr()[0]), step)
        if norm is not None:
            log_metric("grad_norm", float(norm), step)
        log_metric("samples_per_s", float(totals[1]) / elapsed, step)
        log_metric("tokens_per_s", float(totals[2]) / elapsed, step)
        if save_every and (step + 1) % save_every == 0 and step + 1 < stage.steps:
            save_state(engine, state_dir, step + 1)
    return TrainReport(losses=losses, resumed_from_step=start)
