"""The real-scenario testbed: degradations measure what they claim, recordings are labelled by the real
off-the-shelf ASR, bad files are quarantined with a reason and the counts add up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from components.common import config
from components.common.config import load_profile
from components.common.manifest import Utterance, read_records, write_jsonl
from components.evaluate.metrics import wer_en
from components.testbed.core import (
    degrade,
    degraded_heldout,
    labelled_recordings,
    recordings_key,
    room_impulse_response,
)


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    resid = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(resid**2)))


def test_noise_and_babble_hit_their_snr(speech) -> None:  # type: ignore[no-untyped-def]
    clean = speech[0] * 0.5  # headroom: the limiter must not act
    cfg = config.TestbedConfig(noise_snr_db=5.0, babble_snr_db=10.0)
    rng = np.random.default_rng(0)
    noisy, info = degrade(clean, "noise", cfg, rng, [])
    assert info["snr_db"] == 5.0 and info["noise_kind"] in ("white", "pink", "brown")
    assert _snr_db(clean, noisy) == pytest.approx(5.0, abs=0.3)
    babble, info = degrade(clean, "babble", cfg, rng, [speech[1] * 0.3, speech[1][::-1].copy()])
    assert info["talkers"] == 2 and babble.shape == clean.shape
    assert _snr_db(clean, babble) == pytest.approx(10.0, abs=0.3)


def test_room_impulse_response_decays_60_db_in_rt60() -> None:
    h = room_impulse_response(0.5, np.random.default_rng(1), drr_db=6.0)
    assert len(h) == 8000 and h[0] == 1.0
    tail = h[1:].astype(np.float64) ** 2
    assert 10 * np.log10(1.0 / tail.sum()) == pytest.approx(6.0, abs=0.01)  # direct-to-reverberant ratio
    edc = np.cumsum(tail[::-1])[::-1]  # Schroeder backward integration of the tail
    edc_db = 10 * np.log10(edc / edc[0])
    t = np.arange(len(edc)) / 16000
    fit = (edc_db > -35) & (edc_db < -5)  # T30-style fit, extrapolated to 60 dB
    slope = np.polyfit(t[fit], edc_db[fit], 1)[0]
    assert -60 / slope == pytest.approx(0.5, rel=0.15)


def test_reverb_keeps_length_and_level_and_changes_the_signal(speech) -> None:  # type: ignore[no-untyped-def]
    clean = speech[0] * 0.5
    wet, info = degrade(clean, "reverb", config.TestbedConfig(rt60_s=0.8, drr_db=0.0), np.random.default_rng(2), [])
    assert wet.shape == clean.shape and info == {"rt60_s": 0.8, "drr_db": 0.0}
    assert np.sqrt(np.mean(wet**2)) == pytest.approx(np.sqrt(np.mean(clean**2)), rel=0.02)
    assert np.corrcoef(wet, clean)[0, 1] < 0.95
    with pytest.raises(ValueError, match="unknown testbed condition"):
        degrade(clean, "echo", config.TestbedConfig(), np.random.default_rng(0), [])


def test_degraded_heldout_rows(tmp_path: Path, speech) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    rows = []
    for i, (src, text) in enumerate(
        [("micro/digits", "three seven one nine"), ("fortunes/en", "what is two plus five")]
    ):
        rel = f"audio/u{i}.wav"
        (data / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(str(data / rel), speech[i], 16000)
        rows.append(Utterance(f"u{i}", text, "en", src, "test", "asr", text, rel, len(speech[i]) / 16000, 16000, "s"))
    rows.append(
        Utterance("z", "四十二", "zh", "micro/digits", "test", "asr", "四十二", "audio/u0.wav", 1.0, 16000, "s")
    )
    write_jsonl(data / "manifest.jsonl.gz", rows)
    out = tmp_path / "out"
    got = degraded_heldout(data, "manifest.jsonl.gz", config.TestbedConfig(items_per_condition=2), 7, out)
    assert sorted(u.id for u in got) == sorted(f"u{i}~{c}" for i in (0, 1) for c in ("noise", "babble", "reverb"))
    for u in got:
        assert (
            u.split == "test" and u.task == "asr" and u.lang == "en" and u.source == f"testbed/{u.extra['condition']}"
        )
        assert u.extra["origin_id"] in ("u0", "u1") and u.extra["label_source"] == "reference"
        wav, sr = sf.read(str(out / u.audio_path))
        assert sr == 16000 and len(wav) == len(speech[int(u.extra["origin_id"][1])])
    again = degraded_heldout(
        data, "manifest.jsonl.gz", config.TestbedConfig(items_per_condition=2), 7, tmp_path / "again"
    )
    assert [u.extra for u in again] == [u.extra for u in got]  # seeded: the same testbed every time


def test_recordings_are_labelled_and_bad_files_quarantined(tmp_path: Path, speech) -> None:  # type: ignore[no-untyped-def]
    from scipy.signal import resample_poly

    folder = tmp_path / "recordings"
    (folder / "day1").mkdir(parents=True)
    stereo_22k = resample_poly(speech[0], 441, 320).astype(np.float32)  # 16 kHz -> 22.05 kHz
    sf.write(str(folder / "day1" / "meeting.wav"), np.stack([stereo_22k, stereo_22k * 0.5], 1), 22050)
    sf.write(str(folder / "stream.flac"), speech[1], 16000)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(str(folder / "blip.wav"), np.zeros(800, dtype=np.float32), 16000)  # 0.05 s
    sf.write(str(folder / "long.wav"), np.zeros(16000 * 3, dtype=np.float32), 16000)
    (folder / ".DS_Store").write_bytes(b"x")
    out = tmp_path / "out"
    kept, quarantined = labelled_recordings(folder, config.TestbedConfig(max_recording_s=2.5), out)
    assert len(kept) + len(quarantined) == 5  # every file but the hidden one: kept or quarantined
    reasons = {q["file"]: q["reason"] for q in quarantined}
    assert reasons["broken.wav"].startswith("not decodable audio")
    assert reasons["blip.wav"].startswith("too short") and reasons["long.wav"].startswith("too long")
    by_file = {u.extra["file"]: u for u in kept}
    assert set(by_file) == {"day1/meeting.wav", "stream.flac"}
    # the labels are the real Whisper tiny.en's: close to what was spoken
    assert wer_en(["three seven one nine"], [by_file["day1/meeting.wav"].text]) <= 0.5
    assert wer_en(["what is two plus five"], [by_file["stream.flac"].text]) <= 0.5
    for u in kept:
        wav, sr = sf.read(str(out / u.audio_path))
        assert sr == 16000 and wav.ndim == 1 and u.source == "testbed/recordings"
        assert u.extra["label_source"].startswith("whisper-tiny.en")


def test_recordings_change_the_step_key(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    prof = load_profile("tiny", {"testbed.recordings": str(folder)})
    empty = recordings_key(prof)
    sf.write(str(folder / "a.wav"), np.zeros(8000, dtype=np.float32), 16000)
    assert recordings_key(prof) != empty
    assert recordings_key(load_profile("tiny")) == {}
    with pytest.raises(FileNotFoundError, match=r"testbed\.recordings"):
        recordings_key(load_profile("tiny", {"testbed.recordings": str(tmp_path / "missing")}))


def test_testbed_step_writes_manifest_and_counts(tmp_path: Path, speech, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from components.common.manifest import DatasetRef
    from components.common.step import StepContext
    from components.testbed.core import run

    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    sf.write(str(data / "audio" / "u0.wav"), speech[0], 16000)
    u = Utterance("u0", "three seven one nine", "en", "micro/d", "test", "asr", "x", "audio/u0.wav", 1.0, 16000, "s")
    write_jsonl(data / "manifest.jsonl.gz", [u])
    ref = DatasetRef(uri=str(data), md5="m", rows=1, kind="manifest", files={"manifest": "manifest.jsonl.gz"})
    prof = load_profile("tiny", {"testbed.items_per_condition": 1, "testbed.conditions": ["noise", "reverb"]})
    ctx = StepContext("testbed", prof, "k", tmp_path / "out", {"dataset": ref}, "job")
    result = run(ctx)
    assert (
        result.rows == 2 and result.metrics["testbed_items_noise"] == 1 and result.metrics["testbed_items_reverb"] == 1
    )
    rows = read_records(tmp_path / "out" / "manifest.jsonl.gz", Utterance)
    assert [r.id for r in rows] == ["u0~noise", "u0~reverb"]
    empty = load_profile("tiny", {"testbed.items_per_condition": 0})
    with pytest.raises(ValueError, match="testbed is empty"):
        run(StepContext("testbed", empty, "k", tmp_path / "o2", {"dataset": ref}, "job"))
    assert json.loads(json.dumps(result.files)) == {
        "manifest": "manifest.jsonl.gz",
        "quarantine": "quarantine.jsonl.gz",
    }
