"""Representational alignment of a model on tri-modal triples: features per stage and the report's shape."""

import numpy as np
import pytest

from components.evaluate import representations as rep


def test_numerals_from_digit_words() -> None:
    assert rep.numerals("zero one nine two", "en") == "0192"
    assert rep.numerals("零一八四", "zh") == "0184"
    assert rep.numerals("what is two plus five", "en") is None
    assert rep.numerals("", "en") is None


@pytest.fixture()
def triples(speech):  # type: ignore[no-untyped-def]
    from components.synthesize.images import render

    rng = np.random.default_rng(0)
    out = []
    for i in range(12):
        digits = "".join(str(d) for d in rng.integers(0, 10, 3))
        words = " ".join(rep.DIGITS["en"][int(d)] for d in digits)
        wav = speech[i % 2][: 8000 + 800 * i]  # different lengths -> different token counts
        out.append(rep.Triple(f"t{i}", words, render(f"text:en:{digits}"), wav))
    return out


def test_features_have_one_row_per_triple_and_every_layer(tiny_model, processor, triples) -> None:  # type: ignore[no-untyped-def]
    d = tiny_model.config.backbone["text_config"]["hidden_size"]
    n_layers = tiny_model.config.backbone["text_config"]["num_hidden_layers"]
    un = rep.unembedding_features(tiny_model, processor, triples)
    assert {k: v.shape for k, v in un.items()} == {k: (12, d) for k in ("language", "vision", "audio")}
    emb = rep.embedding_features(tiny_model, processor, triples)
    assert set(emb) == {f"{i}/{p}" for i in ("language", "vision", "vision+audio", "audio") for p in ("avg", "last")}
    assert all(v.shape == (n_layers + 1, 12, d) for v in emb.values())
    # layer 0 of the language input is the input embedding: its average equals the unembedding feature
    assert np.allclose(emb["language/avg"][0], un["language"], atol=1e-5)
    # the audio segment changes the vision+audio input's states
    assert not np.allclose(emb["vision/last"][-1], emb["vision+audio/last"][-1])


def test_report_scores_every_pair_and_layer(tiny_model, processor, triples) -> None:  # type: ignore[no-untyped-def]
    from components.evaluate.alignment import METRICS

    un = rep.unembedding_features(tiny_model, processor, triples)
    report = rep.alignment_report(un, rep.embedding_features(tiny_model, processor, triples), topk=3)
    n_layers = tiny_model.config.backbone["text_config"]["num_hidden_layers"]
    assert set(report["unembedding"]) == {"language~vision", "language~vision+audio"}
    assert all(set(s) == set(METRICS) for s in report["unembedding"].values())
    for pooling in ("avg", "last"):
        for pair in ("language~vision", "language~vision+audio"):
            assert len(report["embedding"][pooling][pair]) == n_layers + 1
    with pytest.raises(ValueError, match="more than topk"):
        rep.alignment_report({k: v[:3] for k, v in un.items()}, {}, topk=3)


def test_manifest_triples_are_preferred_over_digit_strings(tmp_path, speech) -> None:  # type: ignore[no-untyped-def]
    import soundfile as sf
    from PIL import Image

    from components.common.manifest import Utterance

    (tmp_path / "audio").mkdir()
    sf.write(str(tmp_path / "audio" / "a.wav"), speech[0], 16000)
    Image.new("RGB", (40, 30), "white").save(tmp_path / "cat.png")

    def row(uid: str, source: str, text: str, **kw) -> Utterance:  # type: ignore[no-untyped-def]
        return Utterance(uid, text, "en", source, "test", "asr", text, "audio/a.wav", 1.0, 16000, "s", **kw)

    digits = row("d", "micro/digits", "three seven")
    assert [t.id for t in rep.alignment_triples(tmp_path, [digits], 5)] == ["d"]  # no triples: digit strings
    own = row("c", "bench/x", "a cat on a mat", extra={"triple": True}, image_path="cat.png")
    got = rep.alignment_triples(tmp_path, [digits, own], 5)
    assert [t.id for t in got] == ["c"] and got[0].text == "a cat on a mat" and got[0].image.size == (40, 30)
    broken = row("b", "bench/x", "no image", extra={"triple": True})
    with pytest.raises(ValueError, match="triple row b has no image_path"):
        rep.alignment_triples(tmp_path, [broken], 5)
