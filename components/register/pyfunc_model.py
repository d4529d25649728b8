"""MLflow models-from-code definition of the registered `nexus-o` model (no cloudpickle).

Request rows (pandas DataFrame): task (asr | s2tt | chat | vqa | tts | s2s), text, image (path or base64),
audio (path or base64 WAV), return_audio (bool). Response rows: text, audio (base64 16 kHz WAV or None).

    m = mlflow.pyfunc.load_model("models:/nexus-o@champion")
    m.predict(pd.DataFrame([{"task": "asr", "audio": "/path/to/utt.wav"}]))
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

TASKS = ("asr", "s2tt", "chat", "vqa", "tts", "s2s")


def _blob(value: str) -> bytes:
    if len(value) < 4096 and os.path.exists(value):
        with open(value, "rb") as fh:
            return fh.read()
    return base64.b64decode(value)


def _audio(value: str) -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    wav, sr = sf.read(io.BytesIO(_blob(value)), dtype="float32")
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    if sr != 16000:
        from math import gcd

        g = gcd(sr, 16000)
        wav = resample_poly(wav, 16000 // g, sr // g).astype(np.float32)
    return wav


def _wav_b64(wav: np.ndarray) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wav, 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


class NexusOPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        from pathlib import Path

        from model.codec import Codec2Codec
        from model.modeling_nexus_o import NexusOForConditionalGeneration
        from model.processor import NexusOProcessor

        ckpt = Path(context.artifacts["checkpoint"])
        self.model = NexusOForConditionalGeneration.from_pretrained(ckpt)
        self.proc = NexusOProcessor.from_pretrained(ckpt)
        self.codec = Codec2Codec()
        self.max_new_tokens = int(os.environ.get("NEXUS_MAX_NEW_TOKENS", "32"))

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image

        from model.codec import speech_budget

        task = row.get("task")
        if task not in TASKS:
            raise ValueError(f"task {task!r} not one of {TASKS}")
        text = row.get("text") or None
        audio = _audio(row["audio"]) if row.get("audio") else None
        image = Image.open(io.BytesIO(_blob(row["image"]))).convert("RGB") if row.get("image") else None
        if task in ("asr", "s2tt", "s2s") and audio is None:
            raise ValueError(f"task {task} needs `audio` (a WAV path or base64)")
        if task == "tts" and not text:
            raise ValueError("task tts needs `text`")
        if task == "tts":
            sample = self.proc.encode("tts", text=text, response=text)
            batch = self.proc.collate([sample])
            hidden = self.model.speech_states(batch["input_ids"], batch["labels"])
            codes = self.model.generate_speech(hidden, max_steps=speech_budget(str(text)))
            return {"text": text, "audio": _wav_b64(self.codec.decode(codes.numpy()))}
        target_lang = "zh" if task == "s2tt" and (text or "").lower().startswith("zh") else "en"
        sample = self.proc.encode(
            task if task != "s2s" else "chat",
            audio=audio,
            image=image,
            text=None if audio is not None else text,
            target_lang=target_lang,
        )
        batch = self.proc.collate([sample])
        ids_rows, hidden_rows = self.model.generate_text(
            batch["input_ids"],
            self.max_new_tokens,
            self.proc.eos_id,
            input_features=batch.get("input_features"),
            feature_lengths=batch.get("feature_lengths"),
            pixel_values=batch.get("pixel_values"),
            image_grid_thw=batch.get("image_grid_thw"),
            mm_token_type_ids=batch["mm_token_type_ids"],
        )
        ids, hidden = ids_rows[0], hidden_rows[0]
        out_audio = None
        if bool(row.get("return_audio")) or task == "s2s":
            codes = self.model.generate_speech(hidden, max_steps=speech_budget(self.proc.decode(ids)))
            out_audio = _wav_b64(self.codec.decode(codes.numpy()))
        return {"text": self.proc.decode(ids), "audio": out_audio}

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        rows = model_input.to_dict(orient="records")
        return pd.DataFrame(
            [self._one({k: (None if _isna(v) else v) for k, v in r.items()}) for r in rows], columns=["text", "audio"]
        )


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


mlflow.models.set_model(NexusOPyfunc())
