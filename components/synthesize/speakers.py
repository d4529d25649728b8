"""Speaker pool and voice measurements.

A speaker is an espeak-ng voice + variant + pitch + rate (`en-us+Alicia:p50:s170`). The pool per language is
the cross product of the profile's lists; `variants: ["all"]` uses every variant espeak-ng ships (101 on
Debian 12), which with 5 pitches x 4 rates gives 16,160 English (8 voices) and 2,020 Mandarin speakers.
Counts are not spread: `measure_f0` and `speaking_rate` measure what the voices really sound like, and the
synthesize step reports their distribution per language (`speaker_pool.json`).
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import subprocess
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Speaker:
    voice: str
    variant: str  # "" for the voice's default
    pitch: int  # espeak-ng -p, 0..99
    rate: int  # espeak-ng -s, words per minute
    gender: str  # "male" | "female" (variant's, or the voice's default "male")

    @property
    def id(self) -> str:
        return f"{self.voice}{'+' + self.variant if self.variant else ''}:p{self.pitch}:s{self.rate}"


@functools.lru_cache(maxsize=1)
def espeak_variants() -> tuple[tuple[str, str], ...]:
    """(variant name, gender) for every variant espeak-ng knows (`espeak-ng --voices=variant`)."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[1] == "variant":
            gender = "female" if parts[2].endswith("F") else "male"
            found.append((parts[4].split("/")[-1], gender))
    if not found:
        raise RuntimeError("espeak-ng lists no voice variants; is espeak-ng-data installed?")
    return tuple(sorted(set(found)))


@functools.lru_cache(maxsize=1)
def espeak_voice_files() -> dict[str, str]:
    """language code -> voice file identifier (`en-gb` -> `gmw/en`), from `espeak-ng --voices`. The CLI
    resolves `-v en-gb` by language; the library's SetVoiceByName needs the identifier."""
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    files: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            files.setdefault(parts[1], parts[4])
    return files


def voice_name(speaker: Speaker) -> str:
    """What to hand espeak-ng: the voice *file* identifier plus the variant (`gmw/en+Alicia`). Given a
    language code with a variant (`-v en-gb+Alicia`), the espeak-ng CLI silently ignores the variant (the
    audio comes out as plain en-gb, measured: F0 94 Hz instead of 229 Hz), so the language is resolved first."""
    ident = espeak_voice_files().get(speaker.voice, speaker.voice)
    return ident + (f"+{speaker.variant}" if speaker.variant else "")


def speaker_pool(voices: list[str], variants: list[str], pitches: list[int], rates: list[int]) -> list[Speaker]:
    known = dict(espeak_variants())
    names = list(known) if variants == ["all"] else variants
    unknown = [v for v in names if v and v not in known]
    if unknown:
        raise ValueError(f"unknown espeak-ng variants {unknown}; see `espeak-ng --voices=variant`")
    return [
        Speaker(v, var, p, r, known.get(var, "male")) for v in voices for var in names for p in pitches for r in rates
    ]


def pick_speaker(rec_id: str, pool: list[Speaker], seed: int) -> Speaker:
    """Seeded per utterance: the same id always gets the same speaker."""
    rng = random.Random(int(hashlib.sha256(f"{seed}:{rec_id}".encode()).hexdigest()[:12], 16))
    return pool[rng.randrange(len(pool))]


def measure_f0(wav: np.ndarray, sr: int = 16000, fmin: float = 60.0, fmax: float = 400.0) -> float | None:
    """Median F0 (Hz) over voiced frames by normalised autocorrelation (40 ms frames, 10 ms hop).

    A frame is voiced when its energy is above 10% of the loudest frame's and the autocorrelation peak in
    the [fmin, fmax] lag range is above 0.5. None when no frame is voiced.
    """
    win, hop = int(0.04 * sr), int(0.01 * sr)
    if len(wav) < win:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(wav, win)[::hop]  # [N, win]
    energy = (frames**2).sum(1)
    frames = frames[energy > 0.1 * energy.max()]
    lo, hi = int(sr / fmax), int(sr / fmin)
    if len(frames) == 0:
        return None
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, 2 * win, axis=1)  # all frames at once: [N, win + 1]
    ac = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :win]  # [N, win] autocorrelation
    ok = ac[:, 0] > 0
    ac = ac[ok] / ac[ok, :1]
    lags = lo + np.argmax(ac[:, lo:hi], axis=1)
    peaks = ac[np.arange(len(ac)), lags]
    f0s = sr / lags[peaks > 0.5]
    return float(np.median(f0s)) if f0s.size else None


def syllables(text: str, lang: str) -> int:
    """Chinese: one syllable per character; English: vowel groups per word (at least one per word)."""
    if lang == "zh":
        return len(re.findall(r"[\u4e00-\u9fff]", text)) + sum(
            max(1, len(re.findall(r"[aeiouy]+", w))) for w in re.findall(r"[a-z]+", text.lower())
        )
    return sum(max(1, len(re.findall(r"[aeiouy]+", w))) for w in re.findall(r"[a-z']+", text.lower()))


def speaking_rate(text: str, lang: str, wav: np.ndarray, sr: int = 16000) -> float | None:
    """Syllables per second of speech (leading/trailing silence below 1% of peak excluded)."""
    if wav.size == 0:
        return None
    loud = np.flatnonzero(np.abs(wav) > 0.01 * np.abs(wav).max())
    if loud.size == 0:
        return None
    seconds = (loud[-1] - loud[0] + 1) / sr
    n = syllables(text, lang)
    return n / seconds if seconds > 0 and n else None


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {
        "n": float(a.size),
        "p05": float(np.percentile(a, 5)),
        "p50": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "min": float(a.min()),
        "max": float(a.max()),
    }
