from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from components.common.caching import md5_dir, step_key
from components.common.config import load_profile
from components.common.manifest import ManifestError, Utterance, read_records, write_jsonl
from components.ingest.core import ingest_records, number_to_words, number_to_zh, stable_split


def test_number_words() -> None:
    assert number_to_words(42) == "forty two"
    assert number_to_words(305) == "three hundred and five"
    assert number_to_zh(42) == "四十二" and number_to_zh(105) == "一百零五" and number_to_zh(15) == "十五"


def test_split_is_stable_under_additions() -> None:
    small = load_profile("tiny")
    big = load_profile("tiny", {"ingest": {"fortunes_en": 60, "micro_world": {"digit_strings": 60}}})
    a = {r.id: r.split for r in ingest_records(small)}
    b = {r.id: r.split for r in ingest_records(big)}
    assert all(b[i] == s for i, s in a.items() if i in b)
    assert {"train", "test"} <= set(a.values())
    assert stable_split("x", small.ingest) == stable_split("x", small.ingest)


def test_step_key_changes_with_each_ingredient() -> None:
    base = step_key("s", {"a": "1"}, {"x": 1}, "code")
    assert base == step_key("s", {"a": "1"}, {"x": 1}, "code")
    assert (
        len(
            {
                base,
                step_key("s", {"a": "2"}, {"x": 1}, "code"),
                step_key("s", {"a": "1"}, {"x": 2}, "code"),
                step_key("s", {"a": "1"}, {"x": 1}, "code2"),
            }
        )
        == 4
    )


def _utt(tmp: Path, i: int, dur: float) -> Utterance:
    path = tmp / "audio" / f"u{i}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(dur * 16000), dtype=np.float32), 16000, subtype="PCM_16")
    return Utterance(f"u{i}", "hello", "en", "test", "train", "asr", "hello", f"audio/u{i}.wav", dur, 16000, "s")


def test_validate_quarantines_rows_and_counts_add_up(tmp_path: Path) -> None:
    from components.validate.core import validate_manifest

    utts = [_utt(tmp_path, i, 1.0) for i in range(10)] + [_utt(tmp_path, 10, 45.0)]
    (tmp_path / "audio" / "u3.wav").unlink()
    write_jsonl(tmp_path / "manifest.jsonl.gz", utts)
    cfg = load_profile("tiny", {"validate": {"min_rows": 5, "max_quarantine_fraction": 0.3}}).validate_
    out = tmp_path / "out"
    out.mkdir()
    report = validate_manifest(tmp_path / "manifest.jsonl.gz", cfg, out)
    assert report["success"] and report["rows_kept"] == 9 and report["rows_quarantined"] == 2
    kept = read_records(out / "manifest.jsonl.gz", Utterance)
    assert {u.id for u in kept} == {f"u{i}" for i in range(10)} - {"u3"}


def test_validate_fails_on_duplicate_ids_naming_the_expectation(tmp_path: Path) -> None:
    from components.validate.core import DataValidationError, validate_manifest

    utts = [_utt(tmp_path, i, 1.0) for i in range(6)]
    utts.append(replace(utts[0]))
    write_jsonl(tmp_path / "manifest.jsonl.gz", utts)
    cfg = load_profile("tiny", {"validate": {"min_rows": 2}}).validate_
    with pytest.raises(DataValidationError, match="expect_column_values_to_be_unique"):
        validate_manifest(tmp_path / "manifest.jsonl.gz", cfg, tmp_path)


def test_bad_manifest_row_names_file_and_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "m.jsonl.gz", [{"id": "x", "text": "t"}])
    with pytest.raises(ManifestError, match=r"m\.jsonl\.gz:1"):
        read_records(tmp_path / "m.jsonl.gz", Utterance)


def test_md5_dir_is_content_addressed(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    first = md5_dir(tmp_path)
    assert first.endswith(".dir") and md5_dir(tmp_path) == first
    (tmp_path / "a").write_text("2")
    assert md5_dir(tmp_path) != first


def test_micro_world_covers_every_task_in_both_languages() -> None:
    from collections import Counter

    prof = load_profile("small")
    recs = ingest_records(prof)
    tasks = Counter(r.task for r in recs)
    assert {"asr", "s2tt", "chat", "s2s", "emotion", "tts", "vqa"} <= set(tasks)  # caption is added by synthesis
    assert {r.lang for r in recs if r.task == "s2tt"} == {"en", "zh"}
    assert {r.extra["target_lang"] for r in recs if r.task == "s2tt"} == {"en", "zh"}
    assert all(r.extra.get("image") for r in recs if r.task == "vqa")
    # one fact, one split: rendering a fact in two languages or tasks never crosses splits
    by_fact: dict[str, set[str]] = {}
    for r in recs:
        if "fact" in r.extra:
            by_fact.setdefault(r.extra["fact"], set()).add(r.split)
    assert all(len(s) == 1 for s in by_fact.values())


def test_seeded_subset_keeps_order_and_is_reproducible() -> None:
    from components.common.config import StageConfig
    from components.train.data import seeded_subset

    rows = [Utterance(f"u{i}", "t", "en", "s", "train", "asr", "t", "a.wav", 1.0, 16000, "s") for i in range(50)]
    a, b = seeded_subset(rows, 10, 7), seeded_subset(rows, 10, 7)
    assert [u.id for u in a] == [u.id for u in b] and len(a) == 10
    assert [int(u.id[1:]) for u in a] == sorted(int(u.id[1:]) for u in a)  # manifest order kept
    assert [u.id for u in seeded_subset(rows, 10, 8)] != [u.id for u in a]
    assert seeded_subset(rows, None, 7) == rows and seeded_subset(rows, 99, 7) == rows
    with pytest.raises(ValueError, match="max_rows"):
        StageConfig(tasks=["asr"], max_rows=0)
