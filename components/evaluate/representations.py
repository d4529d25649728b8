"""Representational alignment of a checkpoint (paper 4.2, appendix B) on paired (text, image, audio) triples.

Unembedding stage (the encoders' outputs, averaged over each item's tokens):
    language = the LLM's input embeddings of the text's tokens       [N, D_llm]
    vision   = vision encoder + merger outputs for the image          [N, D_llm]
    audio    = audio encoder + adapter outputs for the utterance      [N, D_llm]
  pairs scored: language~vision and language~[vision; audio] (appendix B eq. 1: the fused space is the
  concatenation).
Embedding stage (the LLM's hidden states at every layer, input embeddings = layer 0):
    language-only input (the text), vision-only input (the image), vision+audio input (image then audio),
    each pooled over the item's positions by `avg` (mean) and `last` (final position)
  pairs scored per layer: language~vision and language~vision+audio (figure 6, table 7).

Inputs are the bare modality segments (no system prompt or chat template): shared template positions would
add the same vectors to every item and dilute the pooled representation.

Local triples (`micro_world_triples`): held-out spoken digit strings - the words ("zero one nine two"), the
utterance, and the numerals rendered as an image ("0192"). Any dataset can bring its own instead
(`manifest_triples`): test rows with `extra.triple = true`, an `image_path` and an `audio_path` (the text is the
row's `text`); `alignment_triples` prefers those (a cluster's real triples) over the digit strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from components.common.manifest import Utterance
from components.evaluate.alignment import alignment_scores
from components.synthesize.images import render
from components.train.data import load_audio
from model.modeling_nexus_o import NexusOForConditionalGeneration
from model.processor import NexusOProcessor, audio_token_count

DIGITS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "zh": list("零一二三四五六七八九"),
}


@dataclass
class Triple:
    id: str
    text: str
    image: Image.Image
    audio: np.ndarray  # 16 kHz mono


def numerals(text: str, lang: str) -> str | None:
    """'zero one nine two' -> '0192' ('零一九二' likewise); None if the text is not a digit string."""
    words = text.split() if lang == "en" else list(text)
    table = {w: str(i) for i, w in enumerate(DIGITS[lang])}
    if not words or any(w not in table for w in words):
        return None
    return "".join(table[w] for w in words)


def micro_world_triples(dataset_dir: Path, rows: list[Utterance], n: int) -> list[Triple]:
    """Up to n triples from spoken digit strings in `rows` (manifest order)."""
    triples = []
    for u in rows:
        if u.source != "micro/digits" or u.task != "asr":
            continue
        digits = numerals(u.text, u.lang)
        if digits is None:
            continue
        triples.append(Triple(u.id, u.text, render(f"text:en:{digits}"), load_audio(dataset_dir, u)))
        if len(triples) == n:
            break
    return triples


def _segments(proc: NexusOProcessor, t: Triple) -> dict[str, dict[str, Any]]:
    """The embedding-stage inputs of one triple as model keyword arguments (batch of 1): language, vision,
    vision+audio (the alignment pairs) and audio alone (figure 8's third modality)."""
    img = proc.image_processor(images=[t.image], return_tensors="pt")
    n_image = int(img["image_grid_thw"].prod()) // (proc.image_processor.merge_size**2)
    feats = proc.features(t.audio)
    n_audio = audio_token_count(feats.shape[1], proc.adapter_stack)
    vision = "<|vision_start|>" + "<|image_pad|>" * n_image + "<|vision_end|>"
    audio = "<|audio_bos|>" + "<|AUDIO|>" * n_audio + "<|audio_eos|>"
    image_id = int(proc.tokenizer.convert_tokens_to_ids("<|image_pad|>"))

    def inputs(content: str, with_image: bool, with_audio: bool) -> dict[str, Any]:
        ids = torch.tensor([proc.tokenizer(content, add_special_tokens=False)["input_ids"]])
        kw: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "mm_token_type_ids": (ids == image_id).long(),
        }
        if with_image:
            kw |= {"pixel_values": img["pixel_values"], "image_grid_thw": img["image_grid_thw"]}
        if with_audio:
            kw |= {"input_features": torch.from_numpy(feats)[None], "feature_lengths": torch.tensor([feats.shape[1]])}
        return kw

    return {
        "language": inputs(t.text, False, False),
        "vision": inputs(vision, True, False),
        "vision+audio": inputs(vision + audio, True, True),
        "audio": inputs(audio, False, True),
    }


@torch.no_grad()
def unembedding_features(
    model: NexusOForConditionalGeneration, proc: NexusOProcessor, triples: list[Triple]
) -> dict[str, np.ndarray]:
    """-> {"language", "vision", "audio"}: [N, D_llm] token-averaged encoder outputs."""
    model.eval()
    table = model.backbone.get_input_embeddings()
    out: dict[str, list[np.ndarray]] = {"language": [], "vision": [], "audio": []}
    for t in triples:
        ids = torch.tensor(proc.tokenizer(t.text, add_special_tokens=False)["input_ids"])
        out["language"].append(table(ids).mean(0).float().numpy())
        img = proc.image_processor(images=[t.image], return_tensors="pt")
        vis = model.backbone.get_image_features(img["pixel_values"], img["image_grid_thw"]).pooler_output[0]
        out["vision"].append(vis.mean(0).float().numpy())
        feats = proc.features(t.audio)
        aud = model.audio_embeddings(torch.from_numpy(feats)[None], torch.tensor([feats.shape[1]]))[0]
        out["audio"].append(aud.mean(0).float().numpy())
    return {k: np.stack(v) for k, v in out.items()}


@torch.no_grad()
def embedding_features(
    model: NexusOForConditionalGeneration, proc: NexusOProcessor, triples: list[Triple]
) -> dict[str, np.ndarray]:
    """-> {"<input>/<pooling>": [n_layers + 1, N, D_llm]} for input in language, vision, vision+audio, audio
    and pooling in avg, last."""
    model.eval()
    pooled: dict[str, list[np.ndarray]] = {}
    for t in triples:
        for name, kw in _segments(proc, t).items():
            layers = model(**kw).all_hidden_states
            assert layers is not None
            stack = torch.stack([h[0] for h in layers]).float()  # [n_layers + 1, L, D]
            pooled.setdefault(f"{name}/avg", []).append(stack.mean(1).numpy())
            pooled.setdefault(f"{name}/last", []).append(stack[:, -1].numpy())
    return {k: np.stack(v, axis=1) for k, v in pooled.items()}


def alignment_report(un: dict[str, np.ndarray], emb: dict[str, np.ndarray], topk: int = 10) -> dict[str, Any]:
    """Scores from `unembedding_features` and `embedding_features` of the same N triples:
    {"n", "topk", "unembedding": {pair: scores}, "embedding": {pooling: {pair: [scores per layer]}}}."""
    n = len(un["language"])
    if n <= topk:
        raise ValueError(f"alignment needs more than topk={topk} triples; got {n}")
    report: dict[str, Any] = {
        "n": n,
        "topk": topk,
        "unembedding": {
            "language~vision": alignment_scores(un["language"], un["vision"], topk),
            "language~vision+audio": alignment_scores(
                un["language"], np.concatenate([un["vision"], un["audio"]], axis=1), topk
            ),
        },
        "embedding": {},
    }
    for pooling in ("avg", "last"):
        lang = emb[f"language/{pooling}"]
        report["embedding"][pooling] = {
            f"language~{other}": [
                alignment_scores(lang[layer], emb[f"{other}/{pooling}"][layer], topk) for layer in range(len(lang))
            ]
            for other in ("vision", "vision+audio")
        }
    return report


def manifest_triples(dataset_dir: Path, rows: list[Utterance], n: int) -> list[Triple]:
    """Up to n triples from rows marked `extra.triple` (text, image_path, audio_path), in manifest order."""
    triples = []
    for u in rows:
        if not u.extra.get("triple"):
            continue
        if not u.image_path:
            raise ValueError(f"{dataset_dir}: triple row {u.id} has no image_path (a triple needs text, image, audio)")
        image = Image.open(dataset_dir / u.image_path).convert("RGB")
        triples.append(Triple(u.id, u.text, image, load_audio(dataset_dir, u)))
        if len(triples) == n:
            break
    return triples


def alignment_triples(dataset_dir: Path, rows: list[Utterance], n: int) -> list[Triple]:
    """The dataset's own triples when it has any, else the micro-world digit strings."""
    return manifest_triples(dataset_dir, rows, n) or micro_world_triples(dataset_dir, rows, n)
