"""Assembling Nexus-O from transformers-format Qwen2.5-VL and Whisper checkpoint directories (the 7B path),
on tiny checkpoints written by transformers' own save_pretrained; and the new-token-embedding group."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny Qwen2.5-VL checkpoint whose tokenizer has the vision tokens but no audio tokens, and a tiny
    Whisper checkpoint, both written by transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from model.builders import _backbone, whisper_encoder_config

    root = tmp_path_factory.mktemp("ckpts")
    qwen_dir, whisper_dir = root / "qwen", root / "whisper"
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
    special += ["<|image_pad|>", "<|video_pad|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["please help me transcribe my speech", "hello world"] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=special[1:]
    )
    torch.manual_seed(3)
    cfg = _backbone(len(tokenizer), 64, 2, 4, 2, 128, 32, 2, 2, [2, 3, 3])
    Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**cfg)).save_pretrained(qwen_dir)
    tokenizer.save_pretrained(str(qwen_dir))
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(str(qwen_dir))
    WhisperModel(WhisperConfig(**whisper_encoder_config(64, 2, 4, 128))).save_pretrained(whisper_dir)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(str(whisper_dir))
    return qwen_dir, whisper_dir


def test_assembles_pretrained_parts_and_trains_only_new_tokens_in_stage1(checkpoints, speech, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import load_file
    from transformers import WhisperModel

    from components.train.freeze import apply_freeze_policy
    from model.configuration import AudioDecoderConfig
    from model.modeling_nexus_o import NexusOForConditionalGeneration
    from model.pretrained import from_pretrained_parts

    qwen_dir, whisper_dir = checkpoints
    dec = AudioDecoderConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model, proc = from_pretrained_parts(qwen_dir, whisper_dir, decoder=dec, adapter_hidden=64, size="tiny")
    # pretrained weights really are the checkpoint's (not a fresh init)
    saved = load_file(str(next(qwen_dir.glob("*.safetensors"))))
    mine = {k.removeprefix("backbone."): v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    key = next(k for k in saved if "embed_tokens" in k)
    assert torch.equal(mine["model.language_model.embed_tokens.weight"], saved[key])
    enc = WhisperModel.from_pretrained(str(whisper_dir), local_files_only=True).get_encoder()
    assert torch.equal(model.audio_encoder.encoder.layers[0].fc1.weight, enc.layers[0].fc1.weight)
    # audio tokens were added to the tokenizer and their embeddings form the new group
    vocab_before = saved[key].shape[0]
    assert sorted(model.config.new_token_ids) == list(range(vocab_before, vocab_before + 3))
    assert model.config.audio_token_id in model.config.new_token_ids

    batch = proc.collate([proc.encode("asr", audio=speech[0], response="hello world")])
    trainable, _ = apply_freeze_policy(model, 1)
    model(**batch).loss.backward()
    assert model.new_token_embeddings is not None and model.new_token_embeddings.weight.grad is not None
    assert model.new_token_embeddings.weight.grad.abs().sum() > 0  # <|audio_bos|>, <|audio_eos|> are in the prompt
    assert model.backbone.get_input_embeddings().weight.grad is None
    assert trainable == sum(
        p.numel()
        for n, p in model.named_parameters()
        if n.startswith(("audio_encoder.", "audio_adapter.", "new_token_embeddings."))
    )

    # the new rows are the ones read: changing them changes the output
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
        model.new_token_embeddings.weight.add_(1.0)
        assert not torch.allclose(before, model(**batch).logits)

    # whole-model save / offline reload gives identical outputs
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    again = NexusOForConditionalGeneration.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, again(**batch).logits)


def test_missing_checkpoint_dir_says_what_to_do(tmp_path: Path) -> None:
    from model.pretrained import from_pretrained_parts

    with pytest.raises(FileNotFoundError, match="transformers format"):
        from_pretrained_parts(tmp_path / "nope", tmp_path)
