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

from torch import nn

from model.modeling_nexus_o import parameter_group

TRAINABLE: dict[int, tuple[str, ...]] = {
    0: ("vision_encoder", "vision_adapter", "llm", "lm_head"),
    1: ("audio_encoder", "audio_adapter", "new_token_embeddings"),
    2: ("audio_adapter", "vision_adapter", "llm", "lm_head", "new_token_embeddings"),
    3: ("audio_decoder",),
}


def apply_freeze_policy(model: nn.Module, stage: int) -> tuple[int, int]:
    """Set requires_grad by stage. Returns (trainable, frozen) parameter counts."""
    if stage not in TRAINABLE:
        raise ValueError(f"unknown stage {stage}; stages are {sorted(TRAINABLE)}")
    groups = TRAINABLE[stage]
    trainable = frozen = 0
    for name, p in model.named_parameters():
        p.requires_grad = parameter_group(name) in groups
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    if trainable == 0:
        raise RuntimeError(f"stage {stage}: no parameter in groups {groups}; the model's module names changed")
    return trainable, frozen
