"""Turn a versioned manifest into model samples for each stage (paper table 1).

Text-output tasks (stages 1-2): asr, s2tt, chat, caption, emotion rows give audio in -> `target` text out;
s2s rows also serve as chat (spoken question -> text answer) when `chat` is in the stage's tasks.
Speech-output tasks (stage 3): `tts` uses tts and asr rows (text in -> the utterance's codec codes out);
`s2s` uses s2s rows (spoken question in -> answer text + the spoken answer's codec codes out).
Vision (stage 2): each `vqa` row gives image + text question and image + spoken question (tri-modal) samples.
Stage 0 (backbone bootstrap, no audio inputs): `text` turns asr/s2tt/chat/s2s/tts rows into their text
version - the transcript between <|audio_bos|>/<|audio_eos|> where the audio would be, same instruction,
same answer - so the LLM learns the tasks' language and answers before stage 1 aligns audio to it; `vqa`
gives image + text question samples only.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from components.common.manifest import Utterance, read_records
from model.codec import Codec2Codec
from model.processor import NexusOProcessor, Sample


def load_rows(dataset_dir: Path, manifest: str, split: str) -> list[Utterance]:
    return [u for u in read_records(dataset_dir / manifest, Utterance) if u.split == split]


def load_audio(dataset_dir: Path, utt: Utterance, rel: str | None = None) -> np.ndarray:
    """The utterance's input audio (or another of its files, e.g. the s2s response) at 16 kHz."""
    rel = rel or utt.audio_path
    wav, sr = sf.read(str(dataset_dir / rel), dtype="float32")
    if sr != 16000:
        raise ValueError(f"{dataset_dir / rel} ({utt.id}): sample rate {sr}, expected 16000 (rerun synthesize)")
    return wav


TEXT_VERSION = {"asr": "asr", "tts": "asr", "s2tt": "s2tt", "chat": "chat", "s2s": "chat"}


def subset(utt: Utterance) -> str:
    """`micro` (micro-world facts) or `free` (free text): the evaluation's subsets, also the data-mix keys."""
    return "micro" if utt.source.startswith("micro/") else "free"


def seeded_subset(rows: list[Utterance], n: int | None, seed: int) -> list[Utterance]:
    """At most n of `rows`, drawn at random with `seed`, in their original order (all of them when n is None)."""
    if n is None or n >= len(rows):
        return rows
    keep = set(random.Random(seed).sample(range(len(rows)), n))
    return [u for i, u in enumerate(rows) if i in keep]


def pick_mixed(rows: list[Utterance], n: int) -> list[Utterance]:
    """At most n rows, keeping the micro/free mix of `rows` (half each where both suffice; the first rows of
    each in manifest order, so the same split gives the same picks)."""
    micro = [u for u in rows if subset(u) == "micro"]
    free = [u for u in rows if subset(u) == "free"]
    k = min(len(micro), max(n - len(free), n // 2))
    return micro[:k] + free[: n - k]


def stage_samples(
    proc: NexusOProcessor,
    dataset_dir: Path,
    rows: list[Utterance],
    tasks: list[str],
    audio_inputs: bool = True,
    oversample: dict[str, int] | None = None,
    subsets: tuple[str, ...] | list[str] = ("micro", "free"),
) -> list[Sample]:
    """Samples of `tasks` from `rows`; `audio_inputs=False` (stage 0) keeps only samples without input audio.

    `oversample` ({"asr/micro": 2, "vqa": 3}) repeats the samples of a task, or of a task on one subset, that
    many times in the returned list (the same objects: frozen-part caches compute each once). Rows outside
    `subsets` (micro | free) give no samples."""
    samples: list[Sample] = []
    repeat = oversample or {}
    codec = Codec2Codec() if {"tts", "s2s"} & set(tasks) else None
    text_tasks = {"asr", "s2tt", "chat", "caption", "emotion"} & set(tasks)

    def add(task: str, part: str, sample: Sample) -> None:
        samples.extend([sample] * repeat.get(f"{task}/{part}", repeat.get(task, 1)))

    for u in rows:
        part = subset(u)
        if part not in subsets:
            continue

        if "tts" in tasks and u.task in ("tts", "asr"):
            assert codec is not None
            codes = codec.encode(load_audio(dataset_dir, u))
            add("tts", part, proc.encode("tts", text=u.text, response=u.text, codes=codes))
        if "s2s" in tasks and u.task == "s2s" and u.response_audio_path:
            assert codec is not None
            codes = codec.encode(load_audio(dataset_dir, u, u.response_audio_path))
            add("s2s", part, proc.encode("s2s", audio=load_audio(dataset_dir, u), response=u.target, codes=codes))
        if "vqa" in tasks and u.task == "vqa" and u.image_path:  # image + text question, image + spoken question
            image = Image.open(dataset_dir / u.image_path).convert("RGB")
            add("vqa", part, proc.encode("vqa", image=image, text=u.text, response=u.target))
            if audio_inputs:
                add("vqa", part, proc.encode("vqa", image=image, audio=load_audio(dataset_dir, u), response=u.target))
        if "text" in tasks and u.task in TEXT_VERSION:
            target = u.text if u.task == "tts" else u.target
            lang = u.extra.get("target_lang")
            add("text", part, proc.encode(TEXT_VERSION[u.task], spoken=u.text, response=target, target_lang=lang))
        if not audio_inputs:
            continue
        task = "chat" if u.task == "s2s" else u.task
        if task in text_tasks:
            add(
                task,
                part,
                proc.encode(
                    task, audio=load_audio(dataset_dir, u), response=u.target, target_lang=u.extra.get("target_lang")
                ),
            )
    return samples


def training_texts(dataset_dir: Path, manifest: str) -> list[str]:
    """Text used to fit the local tokenizer: the train split's transcripts and targets plus the prompt
    instructions (byte-level BPE still encodes any unseen text)."""
    from model.processor import INSTRUCTIONS, SYSTEM

    rows = load_rows(dataset_dir, manifest, "train")
    return [t for u in rows for t in (u.text, u.target)] + [SYSTEM, *INSTRUCTIONS.values()]
