"""The tokenizer. The 7B profile uses Qwen2.5-VL's own tokenizer plus the audio special tokens; local
profiles train a small byte-level BPE on the project's text (no hub), with the same special tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|audio_bos|>",
    "<|AUDIO|>",
    "<|audio_eos|>",
]
SPECIAL_IDS = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> object:
    """Byte-level BPE over `texts` with SPECIAL_TOKENS at ids 0..9. Returns a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    for name, idx in SPECIAL_IDS.items():
        if tok.token_to_id(name) != idx:
            raise RuntimeError(f"special token {name} got id {tok.token_to_id(name)}, expected {idx}")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
