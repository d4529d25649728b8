"""Text -> speech, sharded. Three pipeline steps share this module:

    synthesize_plan   texts -> shard files of `shard_size` records (the cluster fans out over them)
    synthesize_shard  one shard -> audio/<id>.wav + shard manifest + quarantine (`workers` processes)
    synthesize        all shard manifests -> one manifest (audio hard-linked into one folder) + pool report

Per utterance: a speaker sampled (seeded by id) from the language's pool (speakers.py); emotion rows get
the label's prosody (pitch offset, rate factor, amplitude); s2s rows also get their answer spoken by the
assistant voice (`response_audio_path`); optional coloured-noise augmentation at a random SNR; a
`caption_fraction` share of asr rows also yields a caption row describing the speaker (same audio).
A failure on one utterance goes to the shard's quarantine with its error and never kills the shard; a
rerun reuses finished WAVs and finished shards. The espeak-ng backend runs here; CosyVoice is the cluster
backend (docs/synthesis.md).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
from scipy.signal import lfilter, resample_poly

from components.common.caching import md5_file
from components.common.config import Profile, SynthesizeConfig
from components.common.manifest import DatasetRef, TextRecord, Utterance, iter_jsonl, read_records, write_jsonl
from components.common.step import StepContext, StepResult
from components.synthesize.images import render as render_image
from components.synthesize.speakers import (
    Speaker,
    measure_f0,
    pick_speaker,
    speaker_pool,
    speaking_rate,
    spread,
    voice_name,
)


class TTSBackend(Protocol):
    """Synthesises one text with one speaker to a mono float32 waveform at `sample_rate`."""

    def synthesize(
        self, text: str, lang: str, speaker: Speaker, sample_rate: int, amplitude: int = 100
    ) -> np.ndarray: ...


class EspeakBackend:
    """espeak-ng through its CLI (22.05 kHz output, resampled)."""

    def synthesize(self, text: str, lang: str, speaker: Speaker, sample_rate: int, amplitude: int = 100) -> np.ndarray:
        cmd = [
            "espeak-ng",
            "-v",
            voice_name(speaker),
            "-p",
            str(speaker.pitch),
            "-s",
            str(speaker.rate),
            "-a",
            str(amplitude),
            "--stdout",
            text,
        ]
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        if proc.returncode != 0 or len(proc.stdout) <= 44:
            raise RuntimeError(f"espeak-ng failed (rc={proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}")
        wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        if wav.ndim > 1:
            wav = wav.mean(axis=1)
        return resample_to(wav, sr, sample_rate)


class EspeakLibBackend:
    """espeak-ng in-process through libespeak-ng (ctypes): the same synthesis as the CLI without a process
    per utterance (~3 ms instead of ~15 ms for a short sentence). One instance per process: the library
    keeps global state: get it through `default_backend()`. Raises OSError when libespeak-ng.so.1 is missing."""

    _SYNCHRONOUS, _RATE, _VOLUME, _PITCH, _POS_CHARACTER, _CHARS_UTF8 = 2, 1, 2, 3, 1, 1

    def __init__(self) -> None:
        import ctypes

        self._ct = ctypes
        self._lib = ctypes.CDLL("libespeak-ng.so.1")
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.native_rate = int(self._lib.espeak_Initialize(self._SYNCHRONOUS, 0, None, 0))
        if self.native_rate <= 0:
            raise OSError(f"espeak_Initialize failed ({self.native_rate})")
        self._chunks: list[np.ndarray] = []
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def collect(wav: object, n: int, _events: object) -> int:
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = proto(collect)  # keep a reference: the library calls it later
        self._lib.espeak_SetSynthCallback(self._callback)

    def synthesize(self, text: str, lang: str, speaker: Speaker, sample_rate: int, amplitude: int = 100) -> np.ndarray:
        if self._lib.espeak_SetVoiceByName(voice_name(speaker).encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice_name(speaker)!r}")
        for param, value in ((self._RATE, speaker.rate), (self._PITCH, speaker.pitch), (self._VOLUME, amplitude)):
            self._lib.espeak_SetParameter(param, value, 0)
        self._chunks = []
        data = text.encode()
        err = self._lib.espeak_Synth(
            self._ct.c_char_p(data),
            self._ct.c_size_t(len(data) + 1),
            0,
            self._POS_CHARACTER,
            0,
            self._CHARS_UTF8,
            None,
            None,
        )
        self._lib.espeak_Synchronize()
        if err != 0 or not self._chunks:
            raise RuntimeError(f"espeak-ng synthesis failed (error {err}) for {text[:60]!r}")
        pcm = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        return resample_to(pcm, self.native_rate, sample_rate)


@lru_cache(maxsize=1)
def default_backend() -> TTSBackend:
    """The in-process library when it loads, else the CLI (same voices, same output). One per process:
    libespeak-ng holds global state, so a second initialisation would fight the first over the callback."""
    try:
        return EspeakLibBackend()
    except OSError:
        return EspeakBackend()


@lru_cache(maxsize=8)
def _resample_filter(up: int, down: int) -> np.ndarray:
    """The FIR filter resample_poly would design for (up, down), designed once (it is the costly part)."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    half_len = 10 * max_rate
    return np.asarray(firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)))  # resample_poly scales by up


def resample_to(wav: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return wav.astype(np.float32)
    g = gcd(sr, target)
    up, down = target // g, sr // g
    return resample_poly(wav, up, down, window=_resample_filter(up, down)).astype(np.float32)


def parse_speaker(spec: str) -> Speaker:
    """`cmn+f3:p55:s170` -> Speaker."""
    voice, pitch, rate = spec.split(":")
    name, _, variant = voice.partition("+")
    return Speaker(name, variant, int(pitch[1:]), int(rate[1:]), "female" if variant.startswith("f") else "male")


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16))


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """white, pink (1/f, Voss-McCartney-free IIR approximation) or brown (integrated white) noise, unit RMS."""
    white = rng.standard_normal(n)
    if kind == "pink":  # Paul Kellet's economy pink filter coefficients (published approximation)
        noise = lfilter(
            [0.049922035, -0.095993537, 0.050612699, -0.004408786], [1, -2.494956002, 2.017265875, -0.522189400], white
        )
    elif kind == "brown":
        noise = np.cumsum(white)
        noise = noise - np.linspace(noise[0], noise[-1], n)  # remove drift
    else:
        noise = white
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise(wav: np.ndarray, snr_db: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    signal_rms = float(np.sqrt(np.mean(wav**2)))
    noise = coloured_noise(kind, len(wav), rng) * signal_rms / (10 ** (snr_db / 20))
    out = wav + noise
    peak = float(np.abs(out).max())
    return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32)


# syllables/s below which speech is "slow" / above which "fast", per language (espeak-ng's Mandarin runs at
# ~1.8-3.7 syllables/s, its English at ~3.2-5.7 over the default pool: measured, see speaker_pool.json)
PACE_BOUNDS = {"en": (3.5, 5.0), "zh": (2.0, 3.0)}


def describe(speaker: Speaker, lang: str, f0: float | None, rate: float | None) -> str:
    """Audio-caption target from known metadata (measured pitch/rate, not just the settings)."""
    slow, fast = PACE_BOUNDS[lang]
    pace = "a moderate" if rate is None else ("a slow" if rate < slow else "a fast" if rate > fast else "a moderate")
    pitch = "medium" if f0 is None else ("low" if f0 < 130 else "high" if f0 > 220 else "medium")
    language = "English" if lang == "en" else "Chinese"
    return f"a {speaker.gender} voice speaking {language} at {pace} pace with a {pitch} pitch"


def _write_wav(path: Path, wav: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), wav, sr, subtype="PCM_16")
    tmp.replace(path)  # a WAV is only in place once complete: reruns trust existing files


def synthesize_record(
    rec: TextRecord,
    out_dir: Path,
    cfg: SynthesizeConfig,
    seed: int,
    backend: TTSBackend,
    pools: dict[str, list[Speaker]],
) -> list[Utterance]:
    """One text record -> its utterance (+ a caption row sharing the audio, when drawn)."""
    speaker = pick_speaker(rec.id, pools[rec.lang], seed)
    rng = _rng(seed, rec.id)
    extra: dict[str, Any] = dict(rec.extra)
    amplitude = 100
    if rec.task == "emotion":
        pro = cfg.emotions.get(rec.target)
        if pro is None:
            raise ValueError(f"emotion {rec.target!r} has no prosody in synthesize.emotions")
        speaker = replace(
            speaker, pitch=min(99, max(0, speaker.pitch + pro.pitch_offset)), rate=int(speaker.rate * pro.rate_factor)
        )
        amplitude = pro.amplitude
    rel = f"audio/{rec.id}.wav"
    path = out_dir / rel
    if path.exists():
        wav, _ = sf.read(str(path), dtype="float32")
    else:
        wav = backend.synthesize(rec.text, rec.lang, speaker, cfg.sample_rate, amplitude)
        if wav.size == 0 or not np.isfinite(wav).all():
            raise RuntimeError("backend returned empty or non-finite audio")
        if cfg.noise.enabled and rec.task != "tts" and rng.random() < cfg.noise.fraction:
            snr = float(rng.uniform(cfg.noise.snr_db_min, cfg.noise.snr_db_max))
            kind = str(rng.choice(cfg.noise.kinds))
            wav = add_noise(wav, snr, kind, rng)
            extra |= {"noise_snr_db": round(snr, 2), "noise_kind": kind}
        _write_wav(path, wav, cfg.sample_rate)
    f0, rate = measure_f0(wav, cfg.sample_rate), speaking_rate(rec.text, rec.lang, wav, cfg.sample_rate)
    extra |= {
        "f0_hz": round(f0, 1) if f0 else None,
        "syllables_per_s": round(rate, 2) if rate else None,
        "gender": speaker.gender,
    }
    response = None
    if rec.task == "s2s":
        response = f"audio/{rec.id}.response.wav"
        if not (out_dir / response).exists():
            voice = parse_speaker(cfg.assistant_en if rec.lang == "en" else cfg.assistant_zh)
            _write_wav(
                out_dir / response, backend.synthesize(rec.target, rec.lang, voice, cfg.sample_rate), cfg.sample_rate
            )
    image = None
    if spec := rec.extra.get("image"):
        image = f"images/{rec.id}.png"
        if not (out_dir / image).exists():
            (out_dir / "images").mkdir(parents=True, exist_ok=True)
            tmp = out_dir / f"images/{rec.id}.tmp.png"
            render_image(str(spec)).save(tmp)
            tmp.replace(out_dir / image)
    utt = Utterance(
        **{**asdict(rec), "extra": extra},
        audio_path=rel,
        duration_s=round(len(wav) / cfg.sample_rate, 4),
        sample_rate=cfg.sample_rate,
        speaker=speaker.id,
        response_audio_path=response,
        image_path=image,
    )
    out = [utt]
    if rec.task == "asr" and rng.random() < cfg.caption_fraction:
        out.append(replace(utt, id=f"{rec.id}-caption", task="caption", target=describe(speaker, rec.lang, f0, rate)))
    return out


def _synthesize_chunk(args: tuple[list[TextRecord], str, SynthesizeConfig, int]) -> tuple[list[Utterance], list[dict]]:
    records, out_dir, cfg, seed = args
    backend = default_backend()
    pools = {
        "en": speaker_pool(cfg.voices_en, cfg.variants, cfg.pitches, cfg.rates),
        "zh": speaker_pool(cfg.voices_zh, cfg.variants, cfg.pitches, cfg.rates),
    }
    utts: list[Utterance] = []
    bad: list[dict] = []
    for rec in records:
        try:
            utts += synthesize_record(rec, Path(out_dir), cfg, seed, backend, pools)
        except Exception as exc:  # recorded, never fatal for the shard
            bad.append(
                {
                    "id": rec.id,
                    "text": rec.text,
                    "lang": rec.lang,
                    "task": rec.task,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
    return utts, bad


def synthesize_records(
    records: list[TextRecord], out_dir: Path, cfg: SynthesizeConfig, seed: int
) -> tuple[list[Utterance], list[dict]]:
    """Synthesise `records` with `cfg.workers` processes (interleaved chunks). Returns (utterances, quarantine)."""
    workers = min(cfg.workers, max(1, len(records)))
    chunks = [(records[i::workers], str(out_dir), cfg, seed) for i in range(workers)]
    if workers == 1:
        results = [_synthesize_chunk(chunks[0])]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_synthesize_chunk, chunks))
    utts = sorted((u for r in results for u in r[0]), key=lambda u: u.id)
    bad = sorted((b for r in results for b in r[1]), key=lambda b: b["id"])
    return utts, bad


# -- the three steps ----------------------------------------------------------------------------------------
def run_plan(ctx: StepContext) -> StepResult:
    records = read_records(ctx.inputs["texts"].path("texts"), TextRecord)
    size = ctx.profile.synthesize.shard_size
    files = {}
    for i in range(0, max(1, len(records)), size):
        name = f"shard-{i // size:05d}"
        write_jsonl(ctx.out_dir / "shards" / f"{name}.jsonl.gz", records[i : i + size])
        files[name] = f"shards/{name}.jsonl.gz"
    return StepResult(
        kind="shards",
        rows=len(records),
        files=files,
        metrics={"shards": float(len(files))},
        summary=f"{len(records)} texts in {len(files)} shard(s) of <= {size}",
    )


def shard_refs(plan: DatasetRef) -> list[str]:
    """Split the plan's reference into one reference per shard (what ParallelFor iterates over)."""
    out = []
    for name, rel in sorted(plan.files.items()):
        path = plan.path(name)
        rows = sum(1 for _ in read_records(path, TextRecord))
        out.append(
            DatasetRef(uri=plan.uri, md5=md5_file(path), rows=rows, kind="shard", files={"texts": rel}).to_json()
        )
    return out


def run_shard(ctx: StepContext) -> StepResult:
    records = read_records(ctx.inputs["shard"].path("texts"), TextRecord)
    utts, bad = synthesize_records(records, ctx.out_dir, ctx.profile.synthesize, ctx.profile.seed)
    n = write_jsonl(ctx.out_dir / "manifest.jsonl.gz", utts)
    write_jsonl(ctx.out_dir / "quarantine.jsonl.gz", bad)
    return StepResult(
        kind="manifest",
        rows=n,
        files={"manifest": "manifest.jsonl.gz", "quarantine": "quarantine.jsonl.gz"},
        metrics={"utterances": n, "quarantined": len(bad)},
        summary=f"{len(records)} texts -> {n} utterances, {len(bad)} quarantined",
    )


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copy2(src, dst)


def pool_report(profile: Profile, utts: list[Utterance]) -> dict[str, Any]:
    cfg = profile.synthesize
    report: dict[str, Any] = {}
    for lang, voices in (("en", cfg.voices_en), ("zh", cfg.voices_zh)):
        rows = [u for u in utts if u.lang == lang and u.task != "caption"]
        report[lang] = {
            "pool_size": len(speaker_pool(voices, cfg.variants, cfg.pitches, cfg.rates)),
            "speakers_used": len({u.speaker for u in rows}),
            "f0_hz": spread([u.extra["f0_hz"] for u in rows if u.extra.get("f0_hz")]),
            "syllables_per_s": spread([u.extra["syllables_per_s"] for u in rows if u.extra.get("syllables_per_s")]),
            "female_share": (sum(u.extra.get("gender") == "female" for u in rows) / len(rows)) if rows else 0.0,
        }
    return report


def run_merge(ctx: StepContext) -> StepResult:
    """Concatenate shard manifests into one dataset folder (audio hard-linked, so nothing is copied)."""
    import json

    shards = ctx.collections["shards"]
    utts: list[Utterance] = []
    bad: list[dict] = []
    for ref in shards:
        for u in read_records(ref.path("manifest"), Utterance):
            for rel in filter(None, (u.audio_path, u.response_audio_path, u.image_path)):
                _link(ref.path() / rel, ctx.out_dir / rel)
            utts.append(u)
        bad += [obj for _, obj in iter_jsonl(ref.path("quarantine"))]
    ids = [u.id for u in utts]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate utterance ids across shards; the plan step must partition the texts")
    utts.sort(key=lambda u: u.id)
    n = write_jsonl(ctx.out_dir / "manifest.jsonl.gz", utts)
    write_jsonl(ctx.out_dir / "quarantine.jsonl.gz", bad)
    report = pool_report(ctx.profile, utts)
    (ctx.out_dir / "speaker_pool.json").write_text(json.dumps(report, indent=2))
    hours = sum(u.duration_s for u in utts if u.task != "caption") / 3600
    metrics: dict[str, float] = {"utterances": n, "quarantined": len(bad), "audio_hours": hours}
    for lang, r in report.items():
        metrics[f"speakers_used_{lang}"] = r["speakers_used"]
        metrics[f"speaker_pool_{lang}"] = r["pool_size"]
        for key in ("f0_hz", "syllables_per_s"):
            for stat in ("p05", "p50", "p95"):
                if stat in r[key]:
                    metrics[f"{key}_{lang}_{stat}"] = r[key][stat]
    tasks = sorted({u.task for u in utts})
    return StepResult(
        kind="manifest",
        rows=n,
        files={"manifest": "manifest.jsonl.gz", "quarantine": "quarantine.jsonl.gz", "speakers": "speaker_pool.json"},
        metrics=metrics,
        headline=("utterances",),
        summary=f"{n} utterances ({hours * 60:.1f} min, tasks {tasks}), {len(bad)} quarantined, {len(shards)} shard(s)",
    )
