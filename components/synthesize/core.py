"""Text -> speech with espeak-ng (the local `TTSBackend`; CosyVoice is the cluster backend, see docs/deviations.md).

Each utterance gets a speaker sampled (seeded by its id) from voices x pitches x rates of its language;
audio is written as 16 kHz mono PCM16 WAV under `audio/<id>.wav`. A failure on one utterance goes to
`quarantine.jsonl.gz` with its error and never kills the step; a rerun reuses finished WAVs (resume).
"""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from components.common.config import SynthesizeConfig
from components.common.manifest import TextRecord, Utterance, read_records, write_jsonl
from components.common.step import StepContext, StepResult


class TTSBackend(Protocol):
    """Synthesises one text with one speaker to a mono float32 waveform at `sample_rate`."""

    def synthesize(self, text: str, lang: str, speaker: str, sample_rate: int) -> np.ndarray: ...


class EspeakBackend:
    """espeak-ng via its CLI. Speaker ids look like `en-us+f3:p50:s170` (voice:pitch:rate)."""

    def synthesize(self, text: str, lang: str, speaker: str, sample_rate: int) -> np.ndarray:
        voice, pitch, rate = speaker.split(":")
        proc = subprocess.run(
            ["espeak-ng", "-v", voice, "-p", pitch[1:], "-s", rate[1:], "--stdout", text],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout:
            raise RuntimeError(f"espeak-ng failed (rc={proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}")
        wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        if wav.ndim > 1:
            wav = wav.mean(axis=1)
        return resample_to(wav, sr, sample_rate)


def resample_to(wav: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return wav.astype(np.float32)
    from math import gcd

    g = gcd(sr, target)
    return resample_poly(wav, target // g, sr // g).astype(np.float32)


def speaker_pool(cfg: SynthesizeConfig, lang: str) -> list[str]:
    voices = cfg.voices_en if lang == "en" else cfg.voices_zh
    return [f"{v}:p{p}:s{r}" for v in voices for p in cfg.pitches for r in cfg.rates]


def pick_speaker(rec_id: str, pool: list[str], seed: int) -> str:
    rng = random.Random(int(hashlib.sha256(f"{seed}:{rec_id}".encode()).hexdigest()[:12], 16))
    return rng.choice(pool)


def synthesize_one(rec: TextRecord, out_dir: Path, cfg: SynthesizeConfig, seed: int, backend: TTSBackend) -> Utterance:
    speaker = pick_speaker(rec.id, speaker_pool(cfg, rec.lang), seed)
    rel = f"audio/{rec.id}.wav"
    path = out_dir / rel
    if path.exists():  # resume: a WAV is only renamed into place once complete
        info = sf.info(str(path))
        return Utterance(
            **asdict(rec),
            audio_path=rel,
            duration_s=round(info.frames / info.samplerate, 4),
            sample_rate=info.samplerate,
            speaker=speaker,
        )
    wav = backend.synthesize(rec.text, rec.lang, speaker, cfg.sample_rate)
    if wav.size == 0 or not np.isfinite(wav).all():
        raise RuntimeError("backend returned empty or non-finite audio")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), wav, cfg.sample_rate, subtype="PCM_16")
    tmp.replace(path)
    return Utterance(
        **asdict(rec),
        audio_path=rel,
        duration_s=round(len(wav) / cfg.sample_rate, 4),
        sample_rate=cfg.sample_rate,
        speaker=speaker,
    )


def synthesize_records(
    records: list[TextRecord], out_dir: Path, cfg: SynthesizeConfig, seed: int, backend: TTSBackend | None = None
) -> tuple[list[Utterance], list[dict[str, str]]]:
    """Synthesise all records in parallel; returns (utterances, quarantine rows). Counts add up."""
    backend = backend or EspeakBackend()

    def work(rec: TextRecord) -> Utterance | dict[str, str]:
        try:
            return synthesize_one(rec, out_dir, cfg, seed, backend)
        except Exception as exc:
            return {"id": rec.id, "text": rec.text, "lang": rec.lang, "error": f"{type(exc).__name__}: {exc}"}

    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        results = list(pool.map(work, records))
    utts = [r for r in results if isinstance(r, Utterance)]
    bad = [r for r in results if isinstance(r, dict)]
    return utts, bad


def run(ctx: StepContext) -> StepResult:
    records = read_records(ctx.inputs["texts"].path("texts"), TextRecord)
    utts, bad = synthesize_records(records, ctx.out_dir, ctx.profile.synthesize, ctx.profile.seed)
    n = write_jsonl(ctx.out_dir / "manifest.jsonl.gz", utts)
    write_jsonl(ctx.out_dir / "quarantine.jsonl.gz", bad)
    hours = sum(u.duration_s for u in utts) / 3600
    speakers = len({u.speaker for u in utts})
    return StepResult(
        kind="manifest",
        rows=n,
        files={"manifest": "manifest.jsonl.gz", "quarantine": "quarantine.jsonl.gz"},
        metrics={"utterances": n, "quarantined": len(bad), "audio_hours": hours, "speakers_used": speakers},
        headline=("utterances",),
        summary=f"{n} utterances ({hours * 60:.1f} min, {speakers} speakers), {len(bad)} quarantined",
    )
