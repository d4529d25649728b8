"""NexusOProcessor: ChatML prompts (paper appendix A), tokenizer, Whisper log-mel features, Qwen2-VL image patches.

    proc = NexusOProcessor.from_pretrained(ckpt_dir)
    sample = proc.encode("asr", audio=wav16k, response="three seven")
    batch = proc.collate([sample, ...])   # tensors for NexusOForConditionalGeneration.forward

Labels are -100 everywhere except the assistant's answer and its closing <|im_end|>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.modeling_nexus_o import audio_token_count

SYSTEM = "You are a helpful assistant."
INSTRUCTIONS: dict[str, str] = {
    "asr": "Please help me transcribe my current speech into text.",
    "s2tt_en": "What is the English equivalent of this Chinese speech?",
    "s2tt_zh": "What is the Chinese equivalent of this English speech?",
    "caption": "please describe the speech.",
    "emotion": "what is the emotion in this speech?",
    "chat": "",
    "s2s": "",
    "tts": "",
    "vqa": "",
}


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]
    features: np.ndarray | None = None  # [M, F] log-mel of the input audio
    pixel_values: torch.Tensor | None = None  # [N_patches, C * 2 * 14 * 14]
    image_grid_thw: torch.Tensor | None = None  # [1, 3]
    pixel_values_videos: torch.Tensor | None = None  # [T/2 * N_patches, C * 2 * 14 * 14]
    video_grid_thw: torch.Tensor | None = None  # [1, 3]
    mm_token_type_ids: list[int] = field(default_factory=list)
    codes: np.ndarray | None = None  # [K, T] codec codes of the response audio (stage 3)
    # frozen-encoder cache (trainer): states after `encoder_states_layer` encoder layers replace `features`
    encoder_states: np.ndarray | None = None  # [T, D_enc]
    encoder_states_layer: int = 0
    # frozen-LLM cache (stage 3): the teacher-forced response states that feed the audio decoder
    text_states: np.ndarray | None = None  # [L_resp, D_llm]


class NexusOProcessor:
    def __init__(self, tokenizer: Any, feature_extractor: Any, image_processor: Any, adapter_stack: int = 5) -> None:
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.image_processor = image_processor
        self.adapter_stack = adapter_stack

    @classmethod
    def build(cls, tokenizer: Any, num_mel_bins: int = 80, max_pixels: int = 112 * 112) -> NexusOProcessor:
        from transformers import WhisperFeatureExtractor
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        fe = WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=16000)
        ip = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=max_pixels)
        return cls(tokenizer, fe, ip)

    def save_pretrained(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(directory))
        self.feature_extractor.save_pretrained(str(directory))
        self.image_processor.save_pretrained(str(directory))

    @classmethod
    def from_pretrained(cls, directory: Path) -> NexusOProcessor:
        from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        d = str(directory)
        return cls(
            PreTrainedTokenizerFast.from_pretrained(d),
            WhisperFeatureExtractor.from_pretrained(d),
            Qwen2VLImageProcessorPil.from_pretrained(d),
        )

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.convert_tokens_to_ids("<|im_end|>"))

    # -- pieces -----------------------------------------------------------------------------------------
    def features(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono waveform [N] -> log-mel [M, F] at its real length (F = N // 160 frames)."""
        out = self.feature_extractor(
            audio, sampling_rate=16000, padding="longest", return_attention_mask=True, return_tensors="np"
        )
        n = int(out["attention_mask"][0].sum())
        return np.asarray(out["input_features"][0][:, :n], dtype=np.float32)

    def video(self, frames: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (PIL images, same size) -> (pixel_values_videos [T'/2 * N, C*2*14*14], video_grid_thw [1, 3]).

        The video processor of transformers 5.24 imports torchvision, so frames go through the *image*
        processor (same resize, rescale, normalisation) one by one; each result holds its frame tiled over the
        2-frame temporal patch ([N, C, 2, 14, 14]), from which frame t's patches are taken and consecutive
        frames are paired as Qwen2-VL's temporal patches. An odd frame count repeats the last frame.
        """
        if not frames:
            raise ValueError("a video needs at least one frame")
        frames = list(frames) + ([frames[-1]] if len(frames) % 2 else [])
        tp = self.image_processor.temporal_patch_size
        ps = self.image_processor.patch_size
        per_frame: list[np.ndarray] = []
        grid: np.ndarray | None = None
        for f in frames:
            out = self.image_processor(images=[f], return_tensors="np")
            if grid is not None and not np.array_equal(out["image_grid_thw"], grid):
                raise ValueError("all frames of a video must have the same size")
            grid = np.asarray(out["image_grid_thw"])
            n = int(grid[0, 1] * grid[0, 2])
            per_frame.append(np.asarray(out["pixel_values"]).reshape(n, -1, tp, ps, ps)[:, :, 0])  # [N, C, ps, ps]
        assert grid is not None
        pairs = [np.stack(per_frame[i : i + tp], axis=2).reshape(n, -1) for i in range(0, len(per_frame), tp)]
        thw = torch.tensor([[len(frames) // tp, int(grid[0, 1]), int(grid[0, 2])]])
        return torch.from_numpy(np.concatenate(pairs)), thw

    def user_content(
        self,
        task: str,
        n_audio: int | None,
        text: str | None,
        n_image: int | None,
        target_lang: str | None,
        n_video: int | None = None,
        spoken: str | None = None,
    ) -> str:
        parts = []
        if n_image is not None:
            parts.append("<|vision_start|>" + "<|image_pad|>" * n_image + "<|vision_end|>")
        if n_video is not None:
            parts.append("<|vision_start|>" + "<|video_pad|>" * n_video + "<|vision_end|>")
        if n_audio is not None:
            parts.append("<|audio_bos|>" + "<|AUDIO|>" * n_audio + "<|audio_eos|>")
        elif spoken is not None:
            parts.append(f"<|audio_bos|>{spoken}<|audio_eos|>")
        elif task == "tts":
            parts.append(f"<|audio_bos|>{text}<|audio_eos|>")
        key = f"s2tt_{target_lang or 'en'}" if task == "s2tt" else task
        instruction = INSTRUCTIONS.get(key, "")
        if task in ("chat", "vqa") and n_audio is None and spoken is None and text:
            instruction = text
        return "".join(parts) + instruction

    def prompt(self, user: str) -> str:
        return f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"

    # -- one sample -------------------------------------------------------------------------------------
    def encode(
        self,
        task: str,
        audio: np.ndarray | None = None,
        text: str | None = None,
        image: Any = None,
        response: str | None = None,
        target_lang: str | None = None,
        codes: np.ndarray | None = None,
        video: list[Any] | None = None,
        spoken: str | None = None,
    ) -> Sample:
        """Build one ChatML sample. `audio` 16 kHz mono; `video` a list of frames; `response` the assistant's
        text (omit for inference); `spoken` the words of the audio written between <|audio_bos|> and
        <|audio_eos|> in place of audio tokens (stage 0's text version of an audio task)."""
        if spoken is not None and audio is not None:
            raise ValueError("give either `audio` or its text `spoken`, not both")
        feats = self.features(audio) if audio is not None else None
        n_audio = audio_token_count(feats.shape[1], self.adapter_stack) if feats is not None else None
        pixel_values = grid = None
        n_image = None
        if image is not None:
            img = self.image_processor(images=[image], return_tensors="pt")
            pixel_values, grid = img["pixel_values"], img["image_grid_thw"]
            n_image = int(grid.prod()) // (self.image_processor.merge_size**2)
        pixel_videos = video_grid = None
        n_video = None
        if video is not None:
            pixel_videos, video_grid = self.video(video)
            n_video = int(video_grid.prod()) // (self.image_processor.merge_size**2)
        user = self.user_content(task, n_audio, text, n_image, target_lang, n_video, spoken)
        prompt_ids = self.tokenizer(self.prompt(user), add_special_tokens=False)["input_ids"]
        ids, labels = list(prompt_ids), [-100] * len(prompt_ids)
        if response is not None:
            resp = self.tokenizer(response, add_special_tokens=False)["input_ids"] + [self.eos_id]
            ids += resp
            labels += resp
        image_id = int(self.tokenizer.convert_tokens_to_ids("<|image_pad|>"))
        video_id = int(self.tokenizer.convert_tokens_to_ids("<|video_pad|>"))
        types = [1 if t == image_id else 2 if t == video_id else 0 for t in ids]  # mm_token_type_ids
        return Sample(ids, labels, feats, pixel_values, grid, pixel_videos, video_grid, types, codes)

    # -- a batch ----------------------------------------------------------------------------------------
    def collate(self, samples: list[Sample], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad to the longest sample: right for training, left for batched generation (new tokens line up at the
        end). Audio features padded on F; codes padded with 0 (masked by length)."""
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        pad = int(self.tokenizer.pad_token_id)
        length = max(len(s.input_ids) for s in samples)

        def padded(row: list[int], value: int) -> list[int]:
            fill = [value] * (length - len(row))
            return fill + row if padding_side == "left" else row + fill

        batch: dict[str, torch.Tensor] = {
            "input_ids": torch.tensor([padded(s.input_ids, pad) for s in samples]),
            "attention_mask": torch.tensor([padded([1] * len(s.input_ids), 0) for s in samples]),
            "labels": torch.tensor([padded(s.labels, -100) for s in samples]),
            "mm_token_type_ids": torch.tensor([padded(s.mm_token_type_ids, 0) for s in samples]),
        }
        cached = [s.text_states for s in samples if s.text_states is not None]
        if cached:
            if len(cached) != len(samples):
                raise ValueError("a batch mixes samples with and without cached response states")
            l_max = max(a.shape[0] for a in cached)
            batch["text_states"] = torch.tensor(
                np.stack([np.pad(a, ((0, l_max - a.shape[0]), (0, 0))) for a in cached])
            )
            batch["text_state_lengths"] = torch.tensor([a.shape[0] for a in cached])
        states = [s for s in samples if s.encoder_states is not None]
        if states:
            if any(s.features is not None for s in samples) or len({s.encoder_states_layer for s in states}) > 1:
                raise ValueError("a batch mixes cached encoder states with log-mel features or other layers")
            arrays = [s.encoder_states for s in states if s.encoder_states is not None]
            t_max = max(a.shape[0] for a in arrays)
            batch["audio_states"] = torch.tensor(
                np.stack([np.pad(a, ((0, t_max - a.shape[0]), (0, 0))) for a in arrays])
            )
            batch["audio_state_lengths"] = torch.tensor([a.shape[0] for a in arrays])
            batch["audio_states_layer"] = torch.tensor(states[0].encoder_states_layer)
        feats = [s.features for s in samples if s.features is not None]
        if feats:
            f_max = max(f.shape[1] for f in feats)
            f_max += f_max % 2  # the conv stack halves F
            batch["input_features"] = torch.tensor(
                np.stack([np.pad(f, ((0, 0), (0, f_max - f.shape[1]))) for f in feats])
            )
            batch["feature_lengths"] = torch.tensor([f.shape[1] for f in feats])
        images = [s for s in samples if s.pixel_values is not None]
        if images:
            batch["pixel_values"] = torch.cat([s.pixel_values for s in images])  # type: ignore[misc]
            batch["image_grid_thw"] = torch.cat([s.image_grid_thw for s in images])  # type: ignore[misc]
        videos = [s for s in samples if s.pixel_values_videos is not None]
        if videos:
            batch["pixel_values_videos"] = torch.cat([s.pixel_values_videos for s in videos])  # type: ignore[misc]
            batch["video_grid_thw"] = torch.cat([s.video_grid_thw for s in videos])  # type: ignore[misc]
        codes = [s.codes for s in samples if s.codes is not None]
        if codes:
            if len(codes) != len(samples):
                raise ValueError("a batch mixes samples with and without response audio codes")
            t_max = max(c.shape[1] for c in codes)
            batch["audio_codes"] = torch.tensor(np.stack([np.pad(c, ((0, 0), (0, t_max - c.shape[1]))) for c in codes]))
            batch["audio_code_lengths"] = torch.tensor([c.shape[1] for c in codes])
        return batch

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip()
