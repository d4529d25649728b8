"""NexusOConfig: the backbone's Qwen2.5-VL config, the Whisper encoder config, adapter and AR decoder sizes.

Serialised as `config.json` beside `model.safetensors`; every field is plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class AudioDecoderConfig:
    """The AR audio decoder: `num_layers` causal layers over delayed codec steps, `num_codebooks` heads."""

    hidden_size: int = 64
    num_layers: int = 6
    num_heads: int = 4
    intermediate_size: int = 128
    num_codebooks: int = 8
    codebook_size: int = 1024  # real codes 0..codebook_size-1; special/pad = codebook_size; EOS = codebook_size+1
    max_steps: int = 1500

    @property
    def special_id(self) -> int:
        return self.codebook_size

    @property
    def eos_id(self) -> int:
        return self.codebook_size + 1


@dataclass
class NexusOConfig:
    backbone: dict[str, Any]  # Qwen2_5_VLConfig kwargs (text_config, vision_config, token ids)
    audio_encoder: dict[str, Any]  # WhisperConfig kwargs (encoder part is used)
    audio_decoder: AudioDecoderConfig = field(default_factory=AudioDecoderConfig)
    adapter_stack: int = 5  # encoder frames concatenated by the adapter's first layer
    adapter_hidden: int = 128
    audio_token_id: int = 8
    audio_bos_id: int = 7
    audio_eos_id: int = 9
    # token ids whose input embeddings live in `new_token_embeddings` (the audio special tokens added to a
    # pretrained tokenizer: they train in stage 1 while the rest of the LLM is frozen); empty for local sizes
    new_token_ids: list[int] = field(default_factory=list)
    size: str = "tiny"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, directory: Path) -> None:
        (directory / "config.json").write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> NexusOConfig:
        data = json.loads((directory / "config.json").read_text())
        data["audio_decoder"] = AudioDecoderConfig(**data["audio_decoder"])
        return cls(**data)
