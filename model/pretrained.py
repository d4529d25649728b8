"""Assemble Nexus-O from pretrained checkpoint directories (the cluster's `7b` size): no hub access.

    model, processor = from_pretrained_parts(qwen_dir, whisper_dir)

- `qwen_dir`: a Qwen2.5-VL checkpoint in transformers format (e.g. Qwen2.5-VL-7B-Instruct: config.json,
  model*.safetensors, tokenizer files, preprocessor_config.json), loaded with `local_files_only=True`.
- `whisper_dir`: a Whisper checkpoint in transformers format (e.g. whisper-large-v3); only its encoder is kept.
- The audio special tokens (`<|audio_bos|>`, `<|AUDIO|>`, `<|audio_eos|>`) are added to the Qwen tokenizer;
  their input embeddings live in the `new_token_embeddings` group (initialised to the mean of the pretrained
  embedding rows) so stage 1 can train them while the LLM stays frozen.
- The audio adapter and the AR audio decoder are new (random init); `decoder` sets the decoder's size.

The local sizes (tiny/small) do not come through here: they are built by model/builders.py and pretrained by
stage 0 (issue 5). Tests exercise this path on tiny checkpoints written by transformers' own save_pretrained.
"""

from __future__ import annotations

from pathlib import Path

import torch

from model.configuration import AudioDecoderConfig, NexusOConfig
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.processor import NexusOProcessor

AUDIO_TOKENS = ("<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>")
REQUIRED_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>")


def from_pretrained_parts(
    qwen_dir: Path,
    whisper_dir: Path,
    decoder: AudioDecoderConfig | None = None,
    adapter_hidden: int = 4096,
    dtype: torch.dtype = torch.float32,
    size: str = "7b",
) -> tuple[NexusOForConditionalGeneration, NexusOProcessor]:
    """Build the model around a pretrained Qwen2.5-VL backbone and Whisper encoder; returns (model, processor)."""
    from transformers import (
        AutoTokenizer,
        Qwen2_5_VLForConditionalGeneration,
        WhisperFeatureExtractor,
        WhisperModel,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    for d, what in ((qwen_dir, "Qwen2.5-VL"), (whisper_dir, "Whisper")):
        if not (Path(d) / "config.json").is_file():
            raise FileNotFoundError(
                f"{d}: no config.json - expected a {what} checkpoint directory in transformers format "
                "(download it once outside the cluster and mount it; nothing is fetched from a hub)"
            )
    tokenizer = AutoTokenizer.from_pretrained(str(qwen_dir), local_files_only=True)
    missing = [t for t in REQUIRED_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(f"{qwen_dir}: tokenizer lacks {missing}; is this a Qwen2.5-VL checkpoint?")
    new = [t for t in AUDIO_TOKENS if t not in tokenizer.get_vocab()]
    tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in AUDIO_TOKENS}  # type: ignore[arg-type]

    backbone = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(qwen_dir), local_files_only=True, dtype=dtype)
    encoder = WhisperModel.from_pretrained(str(whisper_dir), local_files_only=True, dtype=dtype).get_encoder()
    config = NexusOConfig(
        backbone=backbone.config.to_dict(),
        audio_encoder=encoder.config.to_dict(),
        audio_decoder=decoder or AudioDecoderConfig(hidden_size=1024, num_heads=16, intermediate_size=4096),
        adapter_hidden=adapter_hidden,
        audio_token_id=ids["<|AUDIO|>"],
        audio_bos_id=ids["<|audio_bos|>"],
        audio_eos_id=ids["<|audio_eos|>"],
        new_token_ids=[ids[t] for t in new],
        size=size,
    )
    model = NexusOForConditionalGeneration(config, backbone=backbone, audio_encoder=encoder)
    if model.new_token_embeddings is not None:
        with torch.no_grad():  # mean of the pretrained rows: a neutral start for the new tokens
            table: torch.Tensor = backbone.get_input_embeddings().weight  # type: ignore[assignment]
            model.new_token_embeddings.weight.copy_(table.float().mean(0).expand_as(model.new_token_embeddings.weight))
    model.to(dtype)
    processor = NexusOProcessor(
        tokenizer,
        WhisperFeatureExtractor.from_pretrained(str(whisper_dir), local_files_only=True),
        Qwen2VLImageProcessorPil.from_pretrained(str(qwen_dir), local_files_only=True),
        config.adapter_stack,
    )
    return model, processor
