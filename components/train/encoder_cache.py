"""Frozen-part caches: run a frozen part once per sample and keep its output on the samples.

1. The frozen prefix of the audio encoder (below). 2. In stage 3 everything but the audio decoder is frozen,
so the LLM's teacher-forced response states that feed the decoder are fixed: `cache_response_states`
computes them once and the model skips the backbone (`text_states` inputs). Both tested equal to the
uncached forward.

Encoder prefix:
When a stage freezes the encoder's conv stem and its first m layers (stages 2 and 3 freeze all of it; stage 1
may, via `audio_encoder_trainable_layers`), their output cannot change during the stage: computing it once
instead of every epoch removes most of the encoder's cost (on `small` the encoder is the larger part of a
training step). The cached states replace the log-mel features on each `Sample` (`encoder_states`,
`encoder_states_layer`); `NexusOForConditionalGeneration` runs the remaining layers. Tested equal to the
uncached forward.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from model.modeling_nexus_o import NexusOForConditionalGeneration, parameter_group, response_states
from model.processor import Sample


@torch.no_grad()
def cache_encoder_prefix(
    model: NexusOForConditionalGeneration, samples: list[Sample], n_layers: int, batch_size: int = 16
) -> tuple[int, float]:
    """Replace `features` by encoder states after `n_layers` layers on every audio sample.

    Returns (samples cached, seconds). Batches are formed by length so little padding is computed."""
    start = time.perf_counter()
    unique = {id(s): s for s in samples if s.features is not None}  # an oversampled sample is listed repeatedly
    audio = sorted(unique.values(), key=lambda s: s.features.shape[1])  # type: ignore[union-attr]
    enc = model.audio_encoder
    device = next(enc.parameters()).device
    was_training = enc.training
    enc.eval()
    for i in range(0, len(audio), batch_size):
        part = audio[i : i + batch_size]
        f_max = max(s.features.shape[1] for s in part)  # type: ignore[union-attr]
        f_max += f_max % 2
        feats = torch.tensor(np.stack([np.pad(s.features, ((0, 0), (0, f_max - s.features.shape[1]))) for s in part]))  # type: ignore[union-attr, arg-type]
        lengths = torch.tensor([s.features.shape[1] for s in part])  # type: ignore[union-attr]
        states, frames = enc.prefix(feats.to(device), lengths.to(device), n_layers)
        for j, s in enumerate(part):
            s.encoder_states = states[j, : int(frames[j])].float().cpu().numpy().copy()  # bf16/GPU -> fp32 host
            s.encoder_states_layer = n_layers
            s.features = None
    enc.train(was_training)
    return len(audio), time.perf_counter() - start


def llm_frozen(model: NexusOForConditionalGeneration) -> bool:
    """True when only the audio decoder trains (stage 3): nothing that shapes its text states changes."""
    return not any(p.requires_grad for n, p in model.named_parameters() if parameter_group(n) != "audio_decoder")


@torch.no_grad()
def cache_response_states(
    model: NexusOForConditionalGeneration, proc: object, samples: list[Sample], batch_size: int = 16
) -> tuple[int, float]:
    """Teacher-forced response states [L_resp, D] per sample with response codes (stage 3). Returns
    (samples cached, seconds). The log-mel / encoder inputs are dropped afterwards: the decoder never sees them."""
    start = time.perf_counter()
    unique = {id(s): s for s in samples if s.codes is not None}  # an oversampled sample is listed repeatedly
    todo = sorted(unique.values(), key=lambda s: len(s.input_ids))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for i in range(0, len(todo), batch_size):
        part = todo[i : i + batch_size]
        batch = proc.collate(part)  # type: ignore[attr-defined]
        batch = {k: v.to(device) for k, v in batch.items() if k not in ("audio_codes", "audio_code_lengths")}
        out = model(**batch)
        states, lengths = response_states(out.hidden_states, batch["labels"])
        for j, s in enumerate(part):
            s.text_states = states[j, : int(lengths[j])].float().cpu().numpy().copy()
            s.features = s.encoder_states = s.pixel_values = s.pixel_values_videos = None
            s.image_grid_thw = s.video_grid_thw = None
    model.train(was_training)
    return len(todo), time.perf_counter() - start
