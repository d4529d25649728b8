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


def test_cer_zh_ignores_punctuation_and_counts_characters() -> None:
    from components.evaluate.metrics import cer_zh

    assert cer_zh(["穷莫失志，富莫癫狂。"], ["穷莫失志富莫癫狂"]) == 0.0
    assert abs(cer_zh(["零零二一"], ["零一二一"]) - 0.25) < 1e-9


def test_bleu_uses_chinese_tokenisation_for_chinese() -> None:
    from components.evaluate.metrics import bleu

    assert abs(bleu(["我们回家吧"], ["我们回家吧"], "zh") - 100) < 1e-6  # one "word" but five characters
    assert abs(bleu(["turn on the light now please"], ["turn on the light now please"], "en") - 100) < 1e-6
    assert bleu(["我们回家吧"], ["你好世界"], "zh") < 1


def test_answer_accuracy_normalises_numbers() -> None:
    from components.evaluate.metrics import answer_accuracy

    assert answer_accuracy(["fifteen", "three"], ["15", "four"], "en") == 0.5
    assert answer_accuracy(["七"], ["七。"], "zh") == 1.0


def test_answer_accuracy_is_reference_in_prediction() -> None:
    from components.evaluate.metrics import answer_accuracy

    # the LLaMA-Questions rule: the reference occurring in a longer answer counts; empty answers do not
    assert answer_accuracy(["fifteen"], ["The answer is 15."], "en") == 1.0
    assert answer_accuracy(["seven"], [""], "en") == 0.0
    assert answer_accuracy(["new york"], ["it is in New York city"], "en") == 1.0
    assert answer_accuracy(["new york"], ["york new"], "en") == 0.0  # a word sequence, not a bag
    assert answer_accuracy(["5"], ["15"], "en") == 0.0  # whole numbers, not digits inside numbers
    assert answer_accuracy(["七"], ["答案是七。"], "zh") == 1.0
    assert answer_accuracy(["七"], ["。"], "zh") == 0.0
    with pytest.raises(ValueError, match="hypotheses"):
        answer_accuracy(["a"], [], "en")
