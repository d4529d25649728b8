import pytest

from components.evaluate.metrics import normalize_en, wer_en


@pytest.mark.parametrize(
    ("ref", "hyp"),
    [
        ("three seven one nine", "3719"),
        ("one three nine", "1, 3, 9"),
        ("twenty three apples", "23 apples."),
        ("Hello, World!", "hello world"),
    ],
)
def test_formatting_is_not_an_error(ref: str, hyp: str) -> None:
    assert normalize_en(ref) == normalize_en(hyp)
    assert wer_en([ref], [hyp]) == 0.0


def test_wer_counts_real_errors() -> None:
    assert wer_en(["the cat sat"], ["the dog sat"]) == pytest.approx(1 / 3)
    assert wer_en(["three seven"], ["3 8"]) == pytest.approx(0.5)
    assert wer_en(["hello there"], [""]) == 1.0


def test_corpus_level() -> None:
    # 1 error over 5 reference words, not the mean of per-utterance rates
    assert wer_en(["a b c d", "e"], ["a b c d", "x"]) == pytest.approx(1 / 5)
