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

HARNESS_VERSION = "nexus-o-eval-1"

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
