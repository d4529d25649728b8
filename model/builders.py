"""Named sizes as builder functions (torchtune `_model_builders` style). The model class never branches on size.

tiny   CI / skeleton: LLM 64 wide x 2 layers, Whisper encoder 64 x 2, audio decoder 2 layers
small  local "really learns" profile: LLM 256 x 4, encoder 256 x 4, audio decoder 6 layers
7b     the paper: Qwen2.5-VL-7B (28 layers, 3584 wide) + Whisper-large-v3 encoder + 6-layer decoder;
       the cluster loads pretrained weights into this config (see docs/architecture.md)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from model.configuration import AudioDecoderConfig, NexusOConfig
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.tokenizer import SPECIAL_IDS


def _backbone(
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    kv: int,
    inter: int,
    v_hidden: int,
    v_depth: int,
    v_heads: int,
    mrope: list[int],
) -> dict[str, Any]:
    return {
        "text_config": {
            "vocab_size": vocab,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv,
            "intermediate_size": inter,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
            "tie_word_embeddings": False,
            "bos_token_id": SPECIAL_IDS["<|im_start|>"],
            "eos_token_id": SPECIAL_IDS["<|im_end|>"],
            "pad_token_id": SPECIAL_IDS["<|endoftext|>"],
        },
        "vision_config": {
            "depth": v_depth,
            "hidden_size": v_hidden,
            "num_heads": v_heads,
            "intermediate_size": 2 * v_hidden,
            "out_hidden_size": hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [v_depth - 1],
            "in_chans": 3,
        },
        "image_token_id": SPECIAL_IDS["<|image_pad|>"],
        "video_token_id": SPECIAL_IDS["<|video_pad|>"],
        "vision_start_token_id": SPECIAL_IDS["<|vision_start|>"],
        "vision_end_token_id": SPECIAL_IDS["<|vision_end|>"],
        "eos_token_id": SPECIAL_IDS["<|im_end|>"],
        "pad_token_id": SPECIAL_IDS["<|endoftext|>"],
        "tie_word_embeddings": False,
    }


def whisper_encoder_config(
    d: int, layers: int, heads: int, ffn: int, mels: int = 80, positions: int = 1500
) -> dict[str, Any]:
    """WhisperConfig kwargs for an encoder of the given size (the decoder part is a minimal placeholder)."""
    return {
        "d_model": d,
        "encoder_layers": layers,
        "encoder_attention_heads": heads,
        "encoder_ffn_dim": ffn,
        "num_mel_bins": mels,
        "max_source_positions": positions,
        "decoder_layers": 1,
        "decoder_attention_heads": heads,
        "decoder_ffn_dim": ffn,
        "vocab_size": 8,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
    }


def _ids() -> dict[str, Any]:
    return {
        "audio_token_id": SPECIAL_IDS["<|AUDIO|>"],
        "audio_bos_id": SPECIAL_IDS["<|audio_bos|>"],
        "audio_eos_id": SPECIAL_IDS["<|audio_eos|>"],
    }


def tiny(vocab_size: int) -> NexusOConfig:
    return NexusOConfig(
        backbone=_backbone(vocab_size, 64, 2, 4, 2, 128, 32, 2, 2, [2, 3, 3]),
        audio_encoder=whisper_encoder_config(64, 2, 4, 128),
        audio_decoder=AudioDecoderConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
        adapter_hidden=128,
        size="tiny",
        **_ids(),
    )


def small(vocab_size: int) -> NexusOConfig:
    return NexusOConfig(
        backbone=_backbone(vocab_size, 256, 4, 8, 4, 704, 128, 4, 4, [4, 6, 6]),
        audio_encoder=whisper_encoder_config(384, 4, 6, 1536),
        audio_decoder=AudioDecoderConfig(hidden_size=256, num_layers=6, num_heads=8, intermediate_size=704),
        adapter_hidden=1024,
        size="small",
        **_ids(),
    )


def nexus_o_7b(vocab_size: int) -> NexusOConfig:
    """Paper sizes: Qwen2.5-VL-7B backbone, Whisper-large-v3 encoder (1280 x 32, 128 mels)."""
    return NexusOConfig(
        backbone=_backbone(vocab_size, 3584, 28, 28, 4, 18944, 1280, 32, 16, [16, 24, 24]),
        audio_encoder=whisper_encoder_config(1280, 32, 20, 5120, mels=128),
        audio_decoder=AudioDecoderConfig(hidden_size=1024, num_layers=6, num_heads=16, intermediate_size=4096),
        adapter_hidden=4096,
        size="7b",
        **_ids(),
    )


BUILDERS: dict[str, Callable[[int], NexusOConfig]] = {"tiny": tiny, "small": small, "7b": nexus_o_7b}


def build_config(size: str, vocab_size: int) -> NexusOConfig:
    if size not in BUILDERS:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(BUILDERS)}")
    return BUILDERS[size](vocab_size)


def build_model(size: str, vocab_size: int) -> NexusOForConditionalGeneration:
    return NexusOForConditionalGeneration(build_config(size, vocab_size))
