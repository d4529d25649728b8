"""Stage 3's held-out check: unigram entropy baseline and decoder validation loss."""

from __future__ import annotations

import math

import torch


def test_unigram_entropy_of_known_distributions() -> None:
    from components.train.speech_check import unigram_entropy

    # codebook 0 uniform over 4 symbols (ln 4), codebook 1 constant (0); ignored targets do not count
    t = torch.tensor([[[0, 1, 2, 3, -100], [5, 5, 5, 5, -100]]])
    assert math.isclose(unigram_entropy(t), (math.log(4) * 4 + 0.0 * 4) / 8, rel_tol=1e-9)


def test_validation_loss_equals_the_training_objective(tiny_model, processor, speech, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from components.train.speech_check import validation_loss, write_audio_samples
    from model.codec import Codec2Codec

    codec = Codec2Codec()
    samples = [
        processor.encode("tts", text=t, response=t, codes=codec.encode(w))
        for t, w in zip(["three seven one nine", "what is two plus five"], speech, strict=True)
    ]
    loss, entropy, n = validation_loss(tiny_model, processor, samples, batch_size=1)
    per_sample = []
    with torch.no_grad():
        for s in samples:
            b = processor.collate([s])
            out = tiny_model(**b)
            count = int(b["audio_code_lengths"][0] + 1) * 8  # T frames + EOS, every codebook
            per_sample.append((float(out.audio_loss), count))
    assert n == sum(c for _, c in per_sample)
    assert math.isclose(loss, sum(v * c for v, c in per_sample) / n, rel_tol=1e-5)
    assert 0 < entropy < math.log(1026) and loss > entropy  # an untrained decoder is worse than frequencies
    wavs = write_audio_samples(tiny_model, processor, ["three"], tmp_path)
    assert wavs[0].exists() and (tmp_path / "sample_0.txt").read_text() == "three"
