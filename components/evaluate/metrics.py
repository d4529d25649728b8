"""Pinned metric definitions (docs/metrics.md). HARNESS_VERSION is recorded with every value.

English WER (`asr_en_wer`): corpus-level jiwer WER after `normalize_en` on both sides:
  1. Whisper's EnglishTextNormalizer (PyPI whisper-normalizer): lower-case, punctuation, spelling, and
     number words -> digits ("twenty three" -> "23");
  2. remaining number words zero..nineteen -> digits (the Whisper normaliser keeps e.g. a lone "one");
  3. every digit becomes its own token ("3719" and "three seven one nine" both -> "3 7 1 9").
So a hypothesis is not penalised for writing digits where the reference spells them, or vice versa.
"""

from __future__ import annotations

import re
from functools import lru_cache

HARNESS_VERSION = "nexus-o-eval-2"  # 2: QA accuracy = reference occurs in prediction (was exact match)

SMALL_NUMBERS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}


@lru_cache(maxsize=1)
def _whisper_normalizer() -> object:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_en(text: str) -> str:
    norm = _whisper_normalizer()(text)  # type: ignore[operator]
    words = [SMALL_NUMBERS.get(w, w) for w in norm.split()]
    spaced = re.sub(r"(\d)", r" \1 ", " ".join(words))
    return " ".join(spaced.split())


def wer_en(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (total edits / total reference words) after `normalize_en`. Empty references are skipped
    only if the hypothesis is empty too; otherwise they count as insertions against a one-token reference."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs, hyps = [], []
    for r, h in zip(references, hypotheses, strict=True):
        rn, hn = normalize_en(r), normalize_en(h)
        if not rn and not hn:
            continue
        refs.append(rn or "<empty>")
        hyps.append(hn)
    if not refs:
        raise ValueError("no non-empty references to score")
    return float(jiwer.wer(refs, hyps))


_ZH_DROP = re.compile(
    r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65!-/:-@\[-`{-~《》「」『』“”‘’—…·]"
)


def normalize_zh(text: str) -> str:
    """Chinese for CER: drop whitespace and (full- or half-width) punctuation; characters are compared as-is."""
    return _ZH_DROP.sub("", text)


def cer_zh(references: list[str], hypotheses: list[str]) -> float:
    """Corpus CER (character edits / reference characters) after `normalize_zh`."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(normalize_zh(r), normalize_zh(h)) for r, h in zip(references, hypotheses, strict=True)]
    pairs = [(r or "∅", h) for r, h in pairs if r or h]
    if not pairs:
        raise ValueError("no non-empty references to score")
    return float(jiwer.cer([r for r, _ in pairs], [h for _, h in pairs]))


def bleu(references: list[str], hypotheses: list[str], target_lang: str) -> float:
    """Corpus BLEU (sacrebleu, 0-100): tokenizer `zh` for Chinese targets, `13a` otherwise."""
    import sacrebleu

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    tok = "zh" if target_lang == "zh" else "13a"
    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tok).score)


def _answer_words(text: str) -> list[str]:
    """English answer words: Whisper-normalised, zero..nineteen as digits, numbers kept whole ("15" is one
    word, so a reference "5" does not occur in a prediction "15")."""
    norm = _whisper_normalizer()(text)  # type: ignore[operator]
    return [SMALL_NUMBERS.get(w, w) for w in norm.split()]


def answer_accuracy(references: list[str], hypotheses: list[str], lang: str) -> float:
    """Spoken/vision QA accuracy, LLaMA-Questions rule: a prediction is correct when the normalised reference
    occurs in the normalised prediction (English: as a contiguous word sequence; Chinese: as a substring after
    `normalize_zh`); empty or unanswerable (normalising to nothing) predictions are wrong."""
    if not references:
        raise ValueError("no references to score")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    correct = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        if lang == "en":
            r, h = _answer_words(ref), _answer_words(hyp)
            correct += bool(r) and any(h[i : i + len(r)] == r for i in range(len(h) - len(r) + 1))
        else:
            rz, hz = normalize_zh(ref), normalize_zh(hyp)
            correct += bool(rz) and bool(hz) and rz in hz
    return correct / len(references)
