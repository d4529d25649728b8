"""Stage 3 checks on held-out text -> speech pairs: is the audio decoder better than code frequencies?

- `validation_loss`: the decoder's masked cross-entropy (nats per target code) on validation TTS samples,
  target-weighted over batches.
- `unigram_entropy`: the entropy of the same targets' empirical distribution per codebook (weighted by
  count) - the loss of a model that learned only code frequencies, fitted on the validation set itself
  (an optimistic baseline: passing means the decoder uses its inputs).
- `write_audio_samples`: greedy speech generation for a few texts, decoded by the codec to 16 kHz WAV files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from model.codec import Codec2Codec, speech_budget
from model.modeling_nexus_o import NexusOForConditionalGeneration, response_states
from model.processor import NexusOProcessor, Sample


def unigram_entropy(targets: torch.Tensor) -> float:
    """targets [B, K, S] (-100 = ignored) -> count-weighted mean over codebooks of H(empirical) in nats."""
    total, weighted = 0, 0.0
    for q in range(targets.shape[1]):
        t = targets[:, q][targets[:, q] != -100]
        if t.numel() == 0:
            continue
        p = torch.bincount(t).double()
        p = p[p > 0] / t.numel()
        weighted += float(-(p * p.log()).sum()) * t.numel()
        total += t.numel()
    return weighted / max(total, 1)


@torch.no_grad()
def validation_loss(
    model: NexusOForConditionalGeneration, proc: NexusOProcessor, samples: list[Sample], batch_size: int = 8
) -> tuple[float, float, int]:
    """-> (decoder CE, unigram entropy of the same targets, number of target codes)."""
    model.eval()
    loss_sum, n, all_targets = 0.0, 0, []
    for i in range(0, len(samples), batch_size):
        batch = proc.collate(samples[i : i + batch_size])
        out = model(**{k: v for k, v in batch.items() if k not in ("audio_codes", "audio_code_lengths")})
        text_hidden, text_lengths = response_states(out.hidden_states, batch["labels"])
        dec = model.audio_decoder
        inputs, targets = dec.teacher_forcing(batch["audio_codes"], batch["audio_code_lengths"])
        logits = dec(inputs, text_hidden, text_lengths)
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="sum", ignore_index=-100
        )
        count = int((targets != -100).sum())
        loss_sum, n = loss_sum + float(ce), n + count
        all_targets.append(targets.permute(1, 0, 2).reshape(targets.shape[1], -1))  # [K, B*S]
    joined = torch.cat(all_targets, 1)[None]  # [1, K, N]
    return loss_sum / max(n, 1), unigram_entropy(joined), n


@torch.no_grad()
def speak(model: NexusOForConditionalGeneration, proc: NexusOProcessor, codec: Codec2Codec, text: str) -> np.ndarray:
    """Teacher-forced text states -> generated codes -> codec2 -> 16 kHz wave (0.1 s of silence if no codes)."""
    batch = proc.collate([proc.encode("tts", text=text, response=text)])
    hidden = model.speech_states(batch["input_ids"], batch["labels"])
    codes = model.generate_speech(hidden, max_steps=speech_budget(text))
    return codec.decode(codes.numpy()) if codes.shape[1] else np.zeros(1600, dtype=np.float32)


def write_audio_samples(
    model: NexusOForConditionalGeneration, proc: NexusOProcessor, texts: list[str], out_dir: Path
) -> list[Path]:
    """`speak` each text into `out_dir/sample_<i>.wav` (+ `.txt` with the text)."""
    model.eval()
    codec = Codec2Codec()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(texts):
        path = out_dir / f"sample_{i}.wav"
        sf.write(str(path), speak(model, proc, codec, text), 16000)
        (out_dir / f"sample_{i}.txt").write_text(text)
        paths.append(path)
    return paths
