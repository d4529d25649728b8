"""MusicGen delay pattern (Copet et al. 2023): codebook q lags q steps.

build: codes [B, K, T] -> delayed [B, K, T + K] where delayed[:, q, s] = codes[:, q, s - 1 - q] when
0 <= s - 1 - q < T, else `special_id`. Step 0 is all special tokens; the last real code of codebook
K-1 sits at step T + K - 1, so the sequence has T + max_delay + 1 = T + K steps.
revert: the exact inverse (index gather), returning [B, K, T].
"""

from __future__ import annotations

import torch


def build_delay_pattern(codes: torch.Tensor, special_id: int) -> torch.Tensor:
    """codes [B, K, T] (long) -> delayed [B, K, T + K]."""
    b, k, t = codes.shape
    out = torch.full((b, k, t + k), special_id, dtype=codes.dtype, device=codes.device)
    for q in range(k):
        out[:, q, q + 1 : q + 1 + t] = codes[:, q, :]
    return out


def revert_delay_pattern(delayed: torch.Tensor) -> torch.Tensor:
    """delayed [B, K, S] -> codes [B, K, S - K] (inverse of `build_delay_pattern`)."""
    b, k, s = delayed.shape
    t = s - k
    if t < 0:
        raise ValueError(f"delayed sequence of {s} steps is shorter than {k} codebooks")
    idx = torch.arange(t, device=delayed.device)[None, :] + torch.arange(1, k + 1, device=delayed.device)[:, None]
    return torch.gather(delayed, 2, idx[None].expand(b, k, t))  # [B, K, T]


def valid_mask(k: int, s: int, device: torch.device | None = None) -> torch.Tensor:
    """[K, S] bool: positions where codebook q may hold a real code (s >= q + 1)."""
    steps = torch.arange(s, device=device)[None, :]
    return steps >= torch.arange(1, k + 1, device=device)[:, None]
