from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.modeling_nexus_o import NexusOForConditionalGeneration, audio_token_count
from model.processor import NexusOProcessor


def test_audio_tokens_match_processor_count(tiny_model, processor: NexusOProcessor, speech) -> None:  # type: ignore[no-untyped-def]
    sample = processor.encode("asr", audio=speech[0], response="three seven one nine")
    n_tokens = sum(1 for t in sample.input_ids if t == tiny_model.config.audio_token_id)
    assert n_tokens == audio_token_count(sample.features.shape[1])  # type: ignore[union-attr]
    batch = processor.collate([sample])
    emb = tiny_model.audio_embeddings(batch["input_features"], batch["feature_lengths"])
    assert emb[0].shape == (n_tokens, tiny_model.backbone.config.text_config.hidden_size)


def test_encoder_matches_stock_whisper_on_full_length(tiny_model) -> None:  # type: ignore[no-untyped-def]
    enc = tiny_model.audio_encoder.eval()
    frames = 2 * enc.encoder.config.max_source_positions
    x = torch.randn(1, enc.encoder.config.num_mel_bins, frames)
    with torch.no_grad():
        ours, _ = enc(x, torch.tensor([frames]))
        stock = enc.encoder(x).last_hidden_state
    assert torch.allclose(ours, stock, atol=1e-5)


def test_variable_length_padding_does_not_change_output(tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    tiny_model.eval()
    a = processor.collate([processor.encode("asr", audio=speech[0])])
    ab = processor.collate([processor.encode("asr", audio=speech[0]), processor.encode("asr", audio=speech[1])])
    with torch.no_grad():
        alone = tiny_model.audio_embeddings(a["input_features"], a["feature_lengths"])[0]
        batched = tiny_model.audio_embeddings(ab["input_features"], ab["feature_lengths"])[0]
    n = min(alone.shape[0], batched.shape[0])
    assert torch.allclose(alone[: n - 1], batched[: n - 1], atol=1e-4)


def test_forward_all_modalities_and_losses(tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    from model.codec import Codec2Codec

    img = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8"))
    out = tiny_model(**processor.collate([processor.encode("asr", audio=speech[0], response="three seven")]))
    assert out.text_loss is not None and torch.isfinite(out.text_loss)
    out = tiny_model(**processor.collate([processor.encode("vqa", image=img, text="which digit", response="seven")]))
    assert torch.isfinite(out.loss)  # type: ignore[arg-type]
    codes = Codec2Codec().encode(speech[0])
    out = tiny_model(**processor.collate([processor.encode("tts", text="three", response="three", codes=codes)]))
    assert out.audio_loss is not None and torch.isfinite(out.audio_loss)
    out.audio_loss.backward()
    assert tiny_model.audio_decoder.heads[0].weight.grad is not None


def test_save_load_roundtrip(tmp_path: Path, tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = NexusOForConditionalGeneration.from_pretrained(tmp_path)
    proc2 = NexusOProcessor.from_pretrained(tmp_path)
    batch = proc2.collate([proc2.encode("asr", audio=speech[0], response="three")])
    with torch.no_grad():
        assert torch.allclose(tiny_model(**batch).logits, loaded(**batch).logits)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))


def test_generation_shapes(tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    tiny_model.eval()
    batch = processor.collate([processor.encode("asr", audio=speech[0])])
    ids, hidden = tiny_model.generate_text(
        batch["input_ids"],
        5,
        processor.eos_id,
        input_features=batch["input_features"],
        feature_lengths=batch["feature_lengths"],
    )
    assert len(ids) == 1 and len(ids[0]) <= 5 and hidden[0].shape == (len(ids[0]), 64)
    codes = tiny_model.generate_speech(hidden[0], max_steps=12)
    assert codes.shape[0] == 8 and codes.shape[1] <= 12
    assert int(codes.max()) < tiny_model.config.audio_decoder.codebook_size


def _frame(seed: int, size: tuple[int, int] = (56, 84)) -> Image.Image:
    arr = (np.random.default_rng(seed).random((*size, 3)) * 255).astype("uint8")
    return Image.fromarray(arr)


def test_video_patching_matches_the_image_processor(processor) -> None:  # type: ignore[no-untyped-def]
    """Two identical frames form one temporal patch equal to the image processor's (which tiles one frame)."""
    f = _frame(1)
    video, vgrid = processor.video([f, f])
    img = processor.image_processor(images=[f], return_tensors="pt")
    assert torch.equal(vgrid, img["image_grid_thw"])
    assert torch.allclose(video, img["pixel_values"])
    # three different frames -> padded to four -> two temporal patches; frame order is kept
    frames = [_frame(i) for i in range(3)]
    v3, g3 = processor.video(frames)
    assert g3.tolist() == [[2, *img["image_grid_thw"][0, 1:].tolist()]]
    n = int(g3[0, 1] * g3[0, 2])
    first = processor.video([frames[0], frames[0]])[0].reshape(n, 3, 2, 14, 14)[:, :, 0]
    assert torch.allclose(v3[:n].reshape(n, 3, 2, 14, 14)[:, :, 0], first)
    with pytest.raises(ValueError, match="same size"):
        processor.video([_frame(0), _frame(1, (112, 112))])


def test_mixed_modality_batch_forward_backward(tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """text-only, image+text, video+text, audio+text and image+audio+text samples in one batch."""
    img = _frame(3)
    samples = [
        processor.encode("chat", text="what is two plus two", response="four"),
        processor.encode("vqa", image=img, text="what is this", response="noise"),
        processor.encode("vqa", video=[_frame(4), _frame(5)], text="what happens", response="nothing"),
        processor.encode("asr", audio=speech[0], response="three seven one nine"),
        processor.encode("vqa", image=img, audio=speech[1], response="noise"),
    ]
    batch = processor.collate(samples)
    assert (batch["mm_token_type_ids"] == 2).sum() > 0 and (batch["mm_token_type_ids"] == 1).sum() > 0
    out = tiny_model(**batch)
    assert out.text_loss is not None and torch.isfinite(out.text_loss)
    out.text_loss.backward()
    assert tiny_model.backbone.model.visual.patch_embed.proj.weight.grad is not None
    assert tiny_model.audio_adapter.fc1.weight.grad is not None


def test_cached_generation_equals_full_recompute(tokenizer, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """KV-cache greedy decoding gives the same tokens and hidden states as re-running the whole sequence,
    for audio, image (M-RoPE) and video prompts, even right after a prompt with different rope offsets."""
    from model.builders import build_model

    torch.manual_seed(1)
    model = build_model("tiny", len(tokenizer)).eval()
    prompts = [
        processor.encode("asr", audio=speech[0]),
        processor.encode("vqa", image=_frame(7), text="what is this"),
        processor.encode("vqa", video=[_frame(8), _frame(9)], audio=speech[1]),
        processor.encode("chat", text="what is two plus two"),
    ]
    for sample in prompts:
        b = processor.collate([sample])
        kwargs = {
            k: b.get(k)
            for k in (
                "input_features",
                "feature_lengths",
                "pixel_values",
                "image_grid_thw",
                "pixel_values_videos",
                "video_grid_thw",
            )
        }
        fast = model.generate_text(b["input_ids"], 6, -1, mm_token_type_ids=b["mm_token_type_ids"], **kwargs)
        slow = model.generate_text(
            b["input_ids"], 6, -1, mm_token_type_ids=b["mm_token_type_ids"], use_cache=False, **kwargs
        )
        assert fast[0] == slow[0] and len(fast[0][0]) == 6
        assert torch.allclose(fast[1][0], slow[1][0], atol=1e-4)


def test_batched_left_padded_generation_equals_one_by_one(tokenizer, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """A left-padded batch mixing audio, image, video and text prompts of different lengths gives each row the
    same tokens and hidden states as generating it alone, with and without the KV cache; rows stop on their
    own end token (forced here by declaring the token a row emits first an end token)."""
    from model.builders import build_model

    torch.manual_seed(2)
    model = build_model("tiny", len(tokenizer)).eval()
    samples = [
        processor.encode("asr", audio=speech[0]),
        processor.encode("chat", text="what is two plus two"),
        processor.encode("vqa", image=_frame(7), text="what is this"),
        processor.encode("vqa", video=[_frame(8), _frame(9)], audio=speech[1]),
    ]
    keys = ("input_features", "feature_lengths", "pixel_values", "image_grid_thw", "pixel_values_videos")

    def run(batch: dict[str, torch.Tensor], eos: int | list[int], cache: bool = True):  # type: ignore[no-untyped-def]
        extra = {k: batch.get(k) for k in (*keys, "video_grid_thw")}
        return model.generate_text(
            batch["input_ids"],
            5,
            eos,
            attention_mask=batch["attention_mask"],
            mm_token_type_ids=batch["mm_token_type_ids"],
            use_cache=cache,
            **extra,
        )

    singles = [run(processor.collate([s], padding_side="left"), -1) for s in samples]
    left = processor.collate(samples, padding_side="left")
    assert (left["attention_mask"][:, 0] == 0).any() and bool(left["attention_mask"][:, -1].all())
    for cache in (True, False):
        ids, hidden = run(left, -1, cache)
        for i, (one_ids, one_hidden) in enumerate(singles):
            assert ids[i] == one_ids[0], f"row {i}"
            assert torch.allclose(hidden[i], one_hidden[0], atol=1e-4), f"row {i}"
    # a row stops at its first end token: make row 1's third token an end token
    stop = singles[1][0][0][2]
    ids, hidden = run(left, [stop])
    for i, (one_ids, _) in enumerate(singles):
        expect = one_ids[0][: one_ids[0].index(stop)] if stop in one_ids[0] else one_ids[0]
        assert ids[i] == expect and hidden[i].shape[0] == len(expect)


def test_spoken_text_stands_in_for_audio(processor, speech) -> None:  # type: ignore[no-untyped-def]
    """Stage 0's text version of an audio task: same prompt, the words between the audio markers."""
    audio = processor.encode("asr", audio=speech[0], response="three seven")
    text = processor.encode("asr", spoken="three seven", response="three seven")
    tok = processor.tokenizer
    a, t = tok.decode(audio.input_ids), tok.decode(text.input_ids)
    assert "<|AUDIO|>" in a and "<|AUDIO|>" not in t and text.features is None
    assert t.replace("<|audio_bos|>three seven<|audio_eos|>", "") == a.replace(
        "<|audio_bos|>" + "<|AUDIO|>" * a.count("<|AUDIO|>") + "<|audio_eos|>", ""
    )
    with pytest.raises(ValueError, match="not both"):
        processor.encode("asr", audio=speech[0], spoken="three")


def test_speech_generation_kv_cache_equals_full_recompute(tiny_model) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(4)
    hidden = torch.randn(1, 5, 64)
    dec = tiny_model.audio_decoder.eval()
    fast = dec.generate(hidden, max_steps=24)
    slow = dec.generate(hidden, max_steps=24, use_cache=False)
    assert fast.shape == slow.shape == (8, 24) and torch.equal(fast, slow)
    # an end-of-speech code on codebook 0 stops both the same way
    with torch.no_grad():
        dec.heads[0].bias[dec.config.eos_id] = 1e4
    assert torch.equal(dec.generate(hidden, max_steps=24), dec.generate(hidden, max_steps=24, use_cache=False))
    assert dec.generate(hidden, max_steps=24).shape[1] == 0
