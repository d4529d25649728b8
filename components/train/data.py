"""Turn a versioned manifest into model samples for each stage (table 1 of the paper, skeleton subset).

stage 1/2: rows whose task is in the stage's `tasks` (asr, s2tt, chat): audio in, `target` text out.
stage 3 (`tts`): English asr rows become text -> speech pairs (the utterance's codec codes are the target).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from components.common.manifest import Utterance, read_records
from model.codec import Codec2Codec
from model.processor import NexusOProcessor, Sample


def load_rows(dataset_dir: Path, manifest: str, split: str) -> list[Utterance]:
    return [u for u in read_records(dataset_dir / manifest, Utterance) if u.split == split]


def load_audio(dataset_dir: Path, utt: Utterance) -> np.ndarray:
    wav, sr = sf.read(str(dataset_dir / utt.audio_path), dtype="float32")
    if sr != 16000:
        raise ValueError(f"{utt.audio_path}: sample rate {sr}, expected 16000 (rerun synthesize/validate)")
    return wav


def stage_samples(proc: NexusOProcessor, dataset_dir: Path, rows: list[Utterance], tasks: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    codec = Codec2Codec() if "tts" in tasks else None
    for u in rows:
        if "tts" in tasks and u.task == "asr" and u.lang == "en":
            assert codec is not None
            wav = load_audio(dataset_dir, u)
            samples.append(proc.encode("tts", text=u.text, response=u.text, codes=codec.encode(wav)))
        elif u.task in tasks and u.task != "tts":
            wav = load_audio(dataset_dir, u)
            samples.append(
                proc.encode(
                    u.task,
                    audio=wav,
                    response=u.target,
                    target_lang=u.extra.get("target_lang"),
                )
            )
    return samples


def training_texts(dataset_dir: Path, manifest: str) -> list[str]:
    """Text used to fit the local tokenizer: the train split's transcripts and targets plus the prompt
    instructions (byte-level BPE still encodes any unseen text)."""
    from model.processor import INSTRUCTIONS, SYSTEM

    rows = load_rows(dataset_dir, manifest, "train")
    return [t for u in rows for t in (u.text, u.target)] + [SYSTEM, *INSTRUCTIONS.values()]
