"""Run the frozen prefix of the audio encoder once per utterance and keep its output on the samples.

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

from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.processor import Sample


@torch.no_grad()
def cache_encoder_prefix(
    model: NexusOForConditionalGeneration, samples: list[Sample], n_layers: int, batch_size: int = 16
) -> tuple[int, float]:
    """Replace `features` by encoder states after `n_layers` layers on every audio sample.

    Returns (samples cached, seconds). Batches are formed by length so little padding is computed."""
    start = time.perf_counter()
    audio = sorted((s for s in samples if s.features is not None), key=lambda s: s.features.shape[1])  # type: ignore[union-attr]
    enc = model.audio_encoder
    was_training = enc.training
    enc.eval()
    for i in range(0, len(audio), batch_size):
        part = audio[i : i + batch_size]
        f_max = max(s.features.shape[1] for s in part)  # type: ignore[union-attr]
        f_max += f_max % 2
        feats = torch.tensor(np.stack([np.pad(s.features, ((0, 0), (0, f_max - s.features.shape[1]))) for s in part]))  # type: ignore[union-attr, arg-type]
        lengths = torch.tensor([s.features.shape[1] for s in part])  # type: ignore[union-attr]
        states, frames = enc.prefix(feats, lengths, n_layers)
        for j, s in enumerate(part):
            s.encoder_states = states[j, : int(frames[j])].numpy().copy()
            s.encoder_states_layer = n_layers
            s.features = None
    enc.train(was_training)
    return len(audio), time.perf_counter() - start
