"""Codec2 (3200 bit/s) as the local speech codec: 16 kHz waveform <-> 8 codebooks at 50 frames/s.

The paper uses the FireFly-GAN codebooks of Fish-Speech; locally the codec is Debian's codec2 via PyPI
`pycodec2` (docs/deviations.md). One 20 ms frame at 8 kHz is 64 bits; the bits are fields, so codebooks
follow the fields rather than cutting bytes (codec2 3200 packing order, MSB first):

    bits  0-1  voicing (2 x 10 ms)      bits 2-8  Wo (pitch, 7)     bits 9-13  energy (5)
    bits 14-63 ten LSP-difference indexes of 5 bits each

    q0 = voicing(2)+energy(5)  q1 = Wo(7)  q2..q5 = LSP pairs (0,1)(2,3)(4,5)(6,7) (10 bits)  q6 = LSP8  q7 = LSP9

Every code is < 1024 (codebook_size). encode -> decode of codes is lossless with respect to the bitstream.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
CODEC_RATE = 8000
FRAME_SAMPLES = 160  # at 8 kHz = 20 ms
NUM_CODEBOOKS = 8
CODEBOOK_SIZE = 1024
# (start bit, width) pieces per codebook, concatenated MSB first
FIELDS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 2), (9, 5)),
    ((2, 7),),
    ((14, 5), (19, 5)),
    ((24, 5), (29, 5)),
    ((34, 5), (39, 5)),
    ((44, 5), (49, 5)),
    ((54, 5),),
    ((59, 5),),
)


def speech_budget(text: str) -> int:
    """Most codec frames (50/s) to generate for `text`: 1 s + 0.6 s per word (or Chinese character)."""
    units = len(text.split()) if text.isascii() else len(text)
    return 50 + 30 * max(1, units)


def _resample(wav: np.ndarray, src: int, dst: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(src, dst)
    return resample_poly(wav, dst // g, src // g).astype(np.float32)


def bits_to_codes(bits: np.ndarray) -> np.ndarray:
    """bits [T, 64] (0/1) -> codes [8, T]."""
    out = np.zeros((NUM_CODEBOOKS, bits.shape[0]), dtype=np.int64)
    for q, pieces in enumerate(FIELDS):
        for start, width in pieces:
            for i in range(width):
                out[q] = (out[q] << 1) | bits[:, start + i]
    return out


def codes_to_bits(codes: np.ndarray) -> np.ndarray:
    """codes [8, T] -> bits [T, 64]; inverse of `bits_to_codes` (codes outside a field's range are masked)."""
    t = codes.shape[1]
    bits = np.zeros((t, 64), dtype=np.uint8)
    for q, pieces in enumerate(FIELDS):
        total = sum(w for _, w in pieces)
        value = codes[q].astype(np.int64) & ((1 << total) - 1)
        pos = total
        for start, width in pieces:
            for i in range(width):
                pos -= 1
                bits[:, start + i] = (value >> pos) & 1
    return bits


class Codec2Codec:
    """Waveform codec: `encode(wav16k [N]) -> codes [8, T]`, `decode(codes [8, T]) -> wav16k [T * 320]`."""

    num_codebooks = NUM_CODEBOOKS
    codebook_size = CODEBOOK_SIZE
    frame_rate = CODEC_RATE // FRAME_SAMPLES  # 50 frames/s

    def __init__(self) -> None:
        import pycodec2

        self._c2 = pycodec2.Codec2(3200)

    def encode(self, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        x = _resample(np.asarray(wav, dtype=np.float32), sample_rate, CODEC_RATE)
        pad = (-len(x)) % FRAME_SAMPLES
        x = np.concatenate([x, np.zeros(pad, dtype=np.float32)])
        pcm = np.clip(x * 32767.0, -32768, 32767).astype(np.int16)
        frames = pcm.reshape(-1, FRAME_SAMPLES)  # [T, 160]
        packed = (
            np.stack([np.frombuffer(self._c2.encode(f), dtype=np.uint8) for f in frames])
            if len(frames)
            else (np.zeros((0, 8), dtype=np.uint8))
        )
        bits = np.unpackbits(packed, axis=1, bitorder="big")  # [T, 64]
        return bits_to_codes(bits)

    def decode(self, codes: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        if codes.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        packed = np.packbits(codes_to_bits(codes), axis=1, bitorder="big")  # [T, 8]
        pcm = np.concatenate([self._c2.decode(row.tobytes()) for row in packed]).astype(np.float32) / 32768.0
        return _resample(pcm, CODEC_RATE, sample_rate)
