"""The paper's freeze policy (figure 4), over the model's named parameter groups (model.PARAMETER_GROUPS).

stage 0 backbone bootstrap (local sizes only, not in the paper): vision encoder, vision adapter, LLM, LM head
stage 1 audio alignment: audio encoder + audio adapter train; LLM, LM head, vision frozen
        + the new audio special-token embeddings (group `new_token_embeddings`, only on pretrained
        backbones whose tokenizer gained those tokens: the 7B profile)
stage 2 audio SFT:       audio adapter, vision adapter (merger), LLM (+ new token embeddings), LM head train;
        encoders frozen
stage 3 audio output:    only the AR audio decoder trains
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from model.modeling_nexus_o import parameter_group

TRAINABLE: dict[int, tuple[str, ...]] = {
    0: ("vision_encoder", "vision_adapter", "llm", "lm_head"),
    1: ("audio_encoder", "audio_adapter", "new_token_embeddings"),
    2: ("audio_adapter", "vision_adapter", "llm", "lm_head", "new_token_embeddings"),
    3: ("audio_decoder",),
}


def apply_freeze_policy(
    model: nn.Module, stage: int, audio_encoder_trainable_layers: int | None = None
) -> tuple[int, int]:
    """Set requires_grad by stage. Returns (trainable, frozen) parameter counts.

    `audio_encoder_trainable_layers` = k (CPU-budget knob, only where the stage trains the audio encoder):
    only the top k encoder layers and the final norm train; the conv stem, positions and lower layers stay
    frozen, so their output can be computed once per utterance and cached (`frozen_encoder_prefix`).
    """
    if stage not in TRAINABLE:
        raise ValueError(f"unknown stage {stage}; stages are {sorted(TRAINABLE)}")
    groups = TRAINABLE[stage]
    n_layers = len(model.audio_encoder.encoder.layers)  # type: ignore[union-attr, arg-type]
    k = n_layers if audio_encoder_trainable_layers is None else audio_encoder_trainable_layers
    if not 0 <= k <= n_layers:
        raise ValueError(f"audio_encoder_trainable_layers={k}: the encoder has {n_layers} layers")
    top = tuple(f"audio_encoder.encoder.layers.{i}." for i in range(n_layers - k, n_layers))
    trainable = frozen = 0
    for name, p in model.named_parameters():
        p.requires_grad = parameter_group(name) in groups
        if p.requires_grad and k < n_layers and parameter_group(name) == "audio_encoder":
            p.requires_grad = name.startswith(top) or name.startswith("audio_encoder.encoder.layer_norm.")
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    if trainable == 0:
        raise RuntimeError(f"stage {stage}: no parameter in groups {groups}; the model's module names changed")
    return trainable, frozen


def frozen_encoder_prefix(model: nn.Module) -> int | None:
    """How many leading encoder layers (after the frozen conv stem) are frozen; None if the stem trains."""
    enc = model.audio_encoder.encoder  # type: ignore[union-attr]
    if any(p.requires_grad for m in (enc.conv1, enc.conv2, enc.embed_positions) for p in m.parameters()):  # type: ignore[union-attr]
        return None
    n = 0
    for layer in enc.layers:  # type: ignore[union-attr]
        if any(p.requires_grad for p in layer.parameters()):
            break
        n += 1
    return n


def params_digest(model: torch.nn.Module, trainable: bool) -> str:
    """sha256 over the (frozen or trainable) parameters, to prove frozen groups stay bit-identical."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad == trainable:
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())  # any dtype (bf16)
    return h.hexdigest()
