"""Nexus-O (paper section 3.1): Qwen2.5-VL backbone + Whisper audio encoder + 5-frame MLP adapter +
autoregressive audio decoder over 8 delayed codec codebooks. Reads top to bottom:

    AudioEncoder      log-mel [B, M, F] -> frames [B, T=ceil(F/2), D_enc], variable length (masked)
    AudioAdapter      frames [B, T, D_enc] -> audio tokens [B, ceil(T/5), D_llm] (concat 5 frames, MLP)
    ARAudioDecoder    LLM hidden states of the response [B, L, D_llm] + delayed codes [B, K, S] -> logits
    NexusOForConditionalGeneration
        forward       audio tokens replace <|AUDIO|> embeddings; Qwen2.5-VL does the rest (vision included);
                      text loss on labels, audio loss on delayed codes when `audio_codes` are given
        generate_text     batched greedy decoding, left padding, KV cache, per-row end tokens
        generate_speech   LLM hidden states of the answer -> AR decoder -> delayed codes -> reverted codes

No training loop and no distributed code here: the trainer (components/train) owns DeepSpeed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Config, Qwen2Model, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from model.configuration import AudioDecoderConfig, NexusOConfig
from model.delay_pattern import build_delay_pattern, revert_delay_pattern, valid_mask


def encoder_frames(n_mel_frames: int) -> int:
    """Whisper's conv stack (k=3, stride 1 then 2, padding 1) maps F mel frames to ceil(F/2)."""
    return (n_mel_frames + 1) // 2


def audio_token_count(n_mel_frames: int, stack: int = 5) -> int:
    """Number of <|AUDIO|> tokens for an utterance of `n_mel_frames` log-mel frames (100 per second)."""
    return math.ceil(encoder_frames(n_mel_frames) / stack)


class AudioEncoder(nn.Module):
    """Whisper encoder over real lengths: conv1 -> conv2 -> positions[:T] -> layers (key-padding mask) -> norm.

    Matches the stock `WhisperEncoder.forward` exactly on a full 30 s input; shorter inputs are not padded
    to 30 s. Frames past an utterance's real length are zeroed in the output.
    """

    def __init__(self, config: WhisperConfig, encoder: WhisperEncoder | None = None) -> None:
        super().__init__()
        self.encoder = encoder or WhisperEncoder(config)

    def forward(self, input_features: torch.Tensor, feature_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input_features [B, M, F], feature_lengths [B] (mel frames) -> (hidden [B, T, D], lengths [B])."""
        x, lengths = self.prefix(input_features, feature_lengths, 0)
        return self.top(x, lengths, 0)

    def prefix(
        self, input_features: torch.Tensor, feature_lengths: torch.Tensor, n_layers: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """conv1 -> conv2 -> positions -> the first `n_layers` layers: -> (states [B, T, D], frame lengths [B]).

        When those parts are frozen their output can be computed once per utterance and cached (trainer)."""
        enc = self.encoder
        x = F.gelu(enc.conv1(input_features.to(enc.conv1.weight.dtype)))  # fp32 log-mels into a bf16 model
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)  # [B, T, D]
        t = x.shape[1]
        if t > enc.embed_positions.num_embeddings:
            raise ValueError(
                f"audio of {t} encoder frames exceeds max_source_positions "
                f"{enc.embed_positions.num_embeddings} (30 s); split long audio"
            )
        x = x + enc.embed_positions.weight[:t]
        lengths = (feature_lengths + 1) // 2
        return self._layers(x, lengths, 0, n_layers), lengths

    def top(self, states: torch.Tensor, lengths: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """States after `start` layers [B, T, D] -> the remaining layers -> norm -> (hidden [B, T, D], lengths)."""
        states = states.to(self.encoder.layer_norm.weight.dtype)  # cached fp32 states into a bf16 model
        x = self.encoder.layer_norm(self._layers(states, lengths, start, len(self.encoder.layers)))
        keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        return x * keep[..., None], lengths

    def _layers(self, x: torch.Tensor, lengths: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        if start >= stop:
            return x
        t = x.shape[1]
        keep = torch.arange(t, device=x.device)[None, :] < lengths[:, None]  # [B, T]
        mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(~keep, torch.finfo(x.dtype).min)
        mask = mask[:, None, None, :].expand(-1, 1, t, t)  # [B, 1, T, T] additive key-padding mask
        for layer in self.encoder.layers[start:stop]:
            x = layer(x, mask)
        return x


class AudioAdapter(nn.Module):
    """Two-layer MLP; the first layer sees `stack` consecutive encoder frames concatenated.

    Remainder handling: T is zero-padded up to a multiple of `stack`, so the last token of an utterance
    covers its final T mod stack frames (plus zeros). Output length per utterance = ceil(T / stack).
    """

    def __init__(self, d_in: int, d_hidden: int, d_out: int, stack: int = 5) -> None:
        super().__init__()
        self.stack = stack
        self.fc1 = nn.Linear(d_in * stack, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [B, T, D_enc] -> (tokens [B, ceil(T/stack), D_out], lengths [B])."""
        b, t, d = frames.shape
        pad = (-t) % self.stack
        x = F.pad(frames, (0, 0, 0, pad))  # [B, T + pad, D]
        x = x.reshape(b, (t + pad) // self.stack, d * self.stack)  # [B, T', stack * D]
        return self.fc2(F.gelu(self.fc1(x))), (lengths + self.stack - 1) // self.stack


class ARAudioDecoder(nn.Module):
    """Causal transformer over delayed codec steps, predicting K codebooks per step.

    Input at step s = ( mean_q E_q(delayed[:, q, s]) + P(H[min(s, L-1)]) ) / 2, where `delayed[:, :, 0]` is
    all special ids (the learned start embedding), H [B, L, D_llm] are the LLM's last-layer hidden states of
    the response text (one text state per audio step, the last held once the text is exhausted), P projects
    them to the decoder width. Output at step s predicts delayed[:, :, s + 1]. Heads output
    codebook_size + 2 classes (real codes, special, EOS); the special class is never predicted.
    """

    def __init__(self, config: AudioDecoderConfig, llm_hidden: int) -> None:
        super().__init__()
        self.config = config
        vocab = config.codebook_size + 2
        self.code_embeddings = nn.ModuleList(
            nn.Embedding(vocab, config.hidden_size) for _ in range(config.num_codebooks)
        )
        self.text_proj = nn.Linear(llm_hidden, config.hidden_size)
        self.transformer = Qwen2Model(
            Qwen2Config(
                vocab_size=1,
                hidden_size=config.hidden_size,
                num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads,
                num_key_value_heads=config.num_heads,
                intermediate_size=config.intermediate_size,
                max_position_embeddings=config.max_steps + 8,
                bos_token_id=None,
                eos_token_id=None,
                pad_token_id=None,
            )
        )
        self.heads = nn.ModuleList(nn.Linear(config.hidden_size, vocab) for _ in range(config.num_codebooks))

    def step_inputs(self, delayed: torch.Tensor, text_hidden: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        """delayed [B, K, S], text_hidden [B, L, D_llm], text_lengths [B] -> inputs [B, S, H]."""
        code = torch.stack([emb(delayed[:, q]) for q, emb in enumerate(self.code_embeddings)], 0).mean(0)  # [B,S,H]
        text_hidden = text_hidden.to(code.dtype)  # cached fp32 text states into a bf16 decoder
        s = delayed.shape[-1]
        idx = torch.minimum(torch.arange(s, device=delayed.device)[None, :], (text_lengths - 1).clamp(min=0)[:, None])
        text = torch.gather(text_hidden, 1, idx[..., None].expand(-1, -1, text_hidden.shape[-1]))  # [B, S, D_llm]
        return (code + self.text_proj(text)) / 2

    def forward(self, delayed: torch.Tensor, text_hidden: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        """-> logits [B, K, S, codebook_size + 2] with the special class at -inf."""
        h = self.transformer(inputs_embeds=self.step_inputs(delayed, text_hidden, text_lengths)).last_hidden_state
        logits = torch.stack([head(h) for head in self.heads], 1)  # [B, K, S, V]
        return logits.index_fill(-1, torch.tensor([self.config.special_id], device=logits.device), float("-inf"))

    def loss(
        self, codes: torch.Tensor, code_lengths: torch.Tensor, text_hidden: torch.Tensor, text_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Masked CE over the delayed codebooks. codes [B, K, T] (padded), code_lengths [B]."""
        inputs, target = self.teacher_forcing(codes, code_lengths)
        logits = self(inputs, text_hidden, text_lengths)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=-100)

    def teacher_forcing(self, codes: torch.Tensor, code_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """codes [B, K, T] (padded), code_lengths [B] -> (inputs [B, K, S], targets [B, K, S]), S = T + K.

        EOS is appended after each utterance's last frame, the delay pattern applied; step s's input predicts
        step s + 1; targets are -100 where the delayed grid holds the special/pad id.
        """
        cfg = self.config
        t = codes.shape[-1]
        steps = torch.arange(t + 1, device=codes.device)[None, None, :]
        full = F.pad(codes, (0, 1), value=cfg.special_id)  # [B, K, T + 1]: room for EOS
        full = torch.where(steps == code_lengths[:, None, None], torch.full_like(full, cfg.eos_id), full)
        full = torch.where(steps > code_lengths[:, None, None], torch.full_like(full, cfg.special_id), full)
        delayed = build_delay_pattern(full, cfg.special_id)  # [B, K, T + 1 + K]
        target = delayed[..., 1:].masked_fill(delayed[..., 1:] == cfg.special_id, -100)
        return delayed[..., :-1], target

    @torch.no_grad()
    def generate(self, text_hidden: torch.Tensor, max_steps: int, use_cache: bool = True) -> torch.Tensor:
        """Greedy decoding for one utterance: text_hidden [1, L, D_llm] -> codes [K, T] (real codes only).

        With `use_cache` each step feeds only its own input (previous step's codes + its text state) and reuses
        the transformer's KV cache: O(S) instead of O(S^2); tested equal to full recompute."""
        from transformers import DynamicCache

        cfg = self.config
        k = cfg.num_codebooks
        lengths = torch.tensor([text_hidden.shape[1]], device=text_hidden.device)
        delayed = torch.full((1, k, 1), cfg.special_id, dtype=torch.long, device=text_hidden.device)
        cache = DynamicCache() if use_cache else None
        eos_at: int | None = None
        for s in range(max_steps + k):
            if cache is not None:
                step_in = self.step_inputs(
                    delayed[..., -1:], text_hidden[:, min(s, text_hidden.shape[1] - 1) :], lengths.clamp(max=1)
                )
                h = self.transformer(inputs_embeds=step_in, cache=cache, use_cache=True).last_hidden_state
                logits = torch.stack([head(h[:, -1]) for head in self.heads], 1)  # [1, K, V]
                logits[..., cfg.special_id] = float("-inf")
            else:
                logits = self(delayed, text_hidden, lengths)[:, :, -1]  # [1, K, V]
            nxt = logits.argmax(-1)  # [1, K]
            allowed = valid_mask(k, s + 2, delayed.device)[:, -1]  # codebook q valid from step q + 1
            nxt = torch.where(allowed[None], nxt, torch.full_like(nxt, cfg.special_id))
            if eos_at is None and int(nxt[0, 0]) == cfg.eos_id:
                eos_at = s + 1  # step of codebook 0's EOS; flush the other codebooks for k - 1 more steps
            delayed = torch.cat([delayed, nxt[..., None]], -1)
            if eos_at is not None and s + 1 >= eos_at + k - 1:
                break
        delayed = torch.cat(
            [delayed, torch.full((1, k, k), cfg.special_id, device=delayed.device, dtype=torch.long)], -1
        )
        codes = revert_delay_pattern(delayed)[0]  # [K, T_all]
        t = (eos_at - 1) if eos_at is not None else min(codes.shape[1], max_steps)
        codes = codes[:, :t]
        return codes.masked_fill(codes >= cfg.codebook_size, 0)


class NewTokenEmbeddings(nn.Module):
    """Input embeddings of tokens added to a pretrained vocabulary (the 7B profile's audio special tokens).

    They are their own parameter group, so stage 1 can train them while the pretrained embedding matrix stays
    frozen (no row-masked gradients, no weight decay leaking into frozen rows). Rows for these ids in the
    backbone's embedding matrix are never read.
    """

    def __init__(self, token_ids: list[int], hidden: int) -> None:
        super().__init__()
        self.token_ids: torch.Tensor
        self.register_buffer("token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        self.weight = nn.Parameter(torch.randn(len(token_ids), hidden) * 0.02)

    def forward(self, input_ids: torch.Tensor, base: nn.Module) -> torch.Tensor:
        """input_ids [B, L] -> embeddings [B, L, D]: `base` rows, with the new tokens' rows from `weight`."""
        hits = torch.eq(input_ids[..., None], self.token_ids)  # [B, L, N]
        is_new = hits.any(-1)
        embeds: torch.Tensor = base(input_ids.masked_fill(is_new, 0))
        new = self.weight[hits.long().argmax(-1)].to(embeds.dtype)  # [B, L, D]
        return torch.where(is_new[..., None], new, embeds)


@dataclass
class NexusOOutput:
    loss: torch.Tensor | None
    text_loss: torch.Tensor | None
    audio_loss: torch.Tensor | None
    logits: torch.Tensor  # [B, L, V]
    hidden_states: torch.Tensor  # [B, L, D_llm], last layer
    all_hidden_states: tuple[torch.Tensor, ...] | None = None  # input embeddings + every layer, each [B, L, D_llm]


# Named parameter groups (the freeze policies act on these): group -> parameter-name prefixes, first match wins.
PARAMETER_GROUPS: dict[str, tuple[str, ...]] = {
    "audio_encoder": ("audio_encoder.",),
    "audio_adapter": ("audio_adapter.",),
    "vision_adapter": ("backbone.model.visual.merger.",),
    "vision_encoder": ("backbone.model.visual.",),
    "llm": ("backbone.model.language_model.",),
    "lm_head": ("backbone.lm_head.",),
    "audio_decoder": ("audio_decoder.",),
    "new_token_embeddings": ("new_token_embeddings.",),
}


def parameter_group(name: str) -> str:
    """The group of a parameter name; every parameter of the model belongs to exactly one."""
    for group, prefixes in PARAMETER_GROUPS.items():
        if name.startswith(prefixes):
            return group
    raise KeyError(f"parameter {name} is in no group; extend PARAMETER_GROUPS")


class NexusOForConditionalGeneration(nn.Module):
    """The whole model: backbone (vision encoder + vision adapter + LLM + LM head), audio encoder, audio adapter,
    AR audio decoder. `PARAMETER_GROUPS` names the parameter groups the freeze policies act on.
    """

    def __init__(
        self,
        config: NexusOConfig,
        backbone: Qwen2_5_VLForConditionalGeneration | None = None,
        audio_encoder: WhisperEncoder | None = None,
    ) -> None:
        """`backbone` / `audio_encoder`: pretrained modules to use instead of randomly initialised ones
        (model/pretrained.py passes Qwen2.5-VL and Whisper checkpoints); their configs must match `config`."""
        super().__init__()
        self.config = config
        self.backbone = backbone or Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config.backbone))
        wcfg = WhisperConfig(**config.audio_encoder)
        self.audio_encoder = AudioEncoder(wcfg, audio_encoder)
        llm_hidden = int(config.backbone["text_config"]["hidden_size"])
        self.audio_adapter = AudioAdapter(wcfg.d_model, config.adapter_hidden, llm_hidden, config.adapter_stack)
        self.audio_decoder = ARAudioDecoder(config.audio_decoder, llm_hidden)
        self.new_token_embeddings = (
            NewTokenEmbeddings(config.new_token_ids, llm_hidden) if config.new_token_ids else None
        )

    # -- embeddings -------------------------------------------------------------------------------------
    def audio_embeddings(
        self,
        input_features: torch.Tensor | None,
        feature_lengths: torch.Tensor | None,
        audio_states: torch.Tensor | None = None,
        audio_state_lengths: torch.Tensor | None = None,
        audio_states_layer: int = 0,
    ) -> list[torch.Tensor]:
        """-> per utterance [N_i, D_llm] audio token embeddings (N_i = audio_token_count(F_i)).

        Either log-mel `input_features` [N, M, F] + `feature_lengths` [N], or precomputed encoder states after
        `audio_states_layer` layers `audio_states` [N, T, D_enc] + `audio_state_lengths` [N] (frames): the
        frozen prefix of the encoder cached by the trainer; the remaining layers run here."""
        if audio_states is not None:
            assert audio_state_lengths is not None
            frames, lengths = self.audio_encoder.top(audio_states, audio_state_lengths, audio_states_layer)
        else:
            assert input_features is not None and feature_lengths is not None
            frames, lengths = self.audio_encoder(input_features, feature_lengths)
        tokens, n = self.audio_adapter(frames, lengths)
        return [tokens[i, : int(n[i])] for i in range(tokens.shape[0])]

    def embed(
        self,
        input_ids: torch.Tensor,
        input_features: torch.Tensor | None = None,
        feature_lengths: torch.Tensor | None = None,
        audio_states: torch.Tensor | None = None,
        audio_state_lengths: torch.Tensor | None = None,
        audio_states_layer: int = 0,
    ) -> torch.Tensor:
        """Token embeddings [B, L, D] with <|AUDIO|> positions replaced by audio token embeddings."""
        table = self.backbone.get_input_embeddings()
        embeds = table(input_ids) if self.new_token_embeddings is None else self.new_token_embeddings(input_ids, table)
        if input_features is None and audio_states is None:
            return embeds
        parts = self.audio_embeddings(
            input_features, feature_lengths, audio_states, audio_state_lengths, audio_states_layer
        )
        audio = torch.cat(parts, 0).to(embeds.dtype)  # [sum N, D]
        mask = input_ids == self.config.audio_token_id  # [B, L]
        if int(mask.sum()) != audio.shape[0]:
            raise ValueError(
                f"{int(mask.sum())} <|AUDIO|> tokens but {audio.shape[0]} audio embeddings; "
                "build inputs with NexusOProcessor"
            )
        return embeds.masked_scatter(mask[..., None].expand_as(embeds), audio)

    # -- forward ----------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,  # [B, L]
        attention_mask: torch.Tensor,  # [B, L]
        labels: torch.Tensor | None = None,  # [B, L], -100 outside the assistant's answer
        input_features: torch.Tensor | None = None,  # [N_audio, M, F]
        feature_lengths: torch.Tensor | None = None,  # [N_audio]
        pixel_values: torch.Tensor | None = None,  # [N_patches, C * T_p * P * P]
        image_grid_thw: torch.Tensor | None = None,  # [N_images, 3]
        pixel_values_videos: torch.Tensor | None = None,  # [N_video_patches, C * T_p * P * P]
        video_grid_thw: torch.Tensor | None = None,  # [N_videos, 3]
        mm_token_type_ids: torch.Tensor | None = None,  # [B, L] 0 text, 1 image, 2 video
        audio_codes: torch.Tensor | None = None,  # [B, K, T] codec codes of the response audio
        audio_code_lengths: torch.Tensor | None = None,  # [B]
        audio_states: torch.Tensor | None = None,  # [N_audio, T, D_enc] cached encoder states (see embed)
        audio_state_lengths: torch.Tensor | None = None,  # [N_audio] encoder frames
        audio_states_layer: torch.Tensor | int = 0,  # encoder layers already applied to audio_states
        text_states: torch.Tensor | None = None,  # [B, L_resp, D_llm] cached response states (frozen LLM)
        text_state_lengths: torch.Tensor | None = None,  # [B]
    ) -> NexusOOutput:
        if text_states is not None:  # stage 3 with a frozen LLM: its response states were computed once
            if audio_codes is None or audio_code_lengths is None or text_state_lengths is None:
                raise ValueError("text_states need text_state_lengths, audio_codes and audio_code_lengths")
            decoder_loss = self.audio_decoder.loss(audio_codes, audio_code_lengths, text_states, text_state_lengths)
            return NexusOOutput(decoder_loss, None, decoder_loss, text_states.new_zeros(0), text_states)
        embeds = self.embed(
            input_ids, input_features, feature_lengths, audio_states, audio_state_lengths, int(audio_states_layer)
        )
        out = self.backbone(
            input_ids=input_ids,
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            output_hidden_states=True,
        )
        logits, hidden = out.logits, out.hidden_states[-1]
        text_loss = audio_loss = None
        if labels is not None:
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
            text_loss = F.cross_entropy(shift_logits, labels[:, 1:].reshape(-1), ignore_index=-100)
        if audio_codes is not None:
            if labels is None or audio_code_lengths is None:
                raise ValueError("audio_codes need labels (marking the response text) and audio_code_lengths")
            text_hidden, text_lengths = response_states(hidden, labels)
            audio_loss = self.audio_decoder.loss(audio_codes, audio_code_lengths, text_hidden, text_lengths)
        losses = [x for x in (text_loss, audio_loss) if x is not None]
        return NexusOOutput(
            sum(losses) if losses else None,  # type: ignore[arg-type]
            text_loss,
            audio_loss,
            logits,
            hidden,
            tuple(out.hidden_states),
        )

    # -- generation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_text(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        eos_token_id: int | list[int],
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        feature_lengths: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        use_cache: bool = True,
    ) -> tuple[list[list[int]], list[torch.Tensor]]:
        """Batched greedy decoding. input_ids [B, L] LEFT-padded (`NexusOProcessor.collate(..., padding_side=
        "left")`), attention_mask [B, L] (1 = real token). A row stops at its first end token (not returned).

        Returns (new token ids per row, the hidden states that predicted them per row: [N_b, D_llm] each) - the
        same states `response_states` gathers when the answer is teacher-forced, so they feed `generate_speech`.

        3-D M-RoPE positions are computed once from the prompt (`get_rope_index` over real tokens only); each
        new token of row b sits at position (real prompt length + steps so far + delta_b), delta_b being the
        row's vision offset. With `use_cache` the prompt (audio, image, video) is encoded once and new tokens
        reuse the KV cache; without it every step re-runs the whole sequence (the reference it is tested against).
        """
        from transformers import DynamicCache

        b = input_ids.shape[0]
        eos = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        types = mm_token_type_ids if mm_token_type_ids is not None else torch.zeros_like(input_ids)
        vision = {
            "pixel_values": pixel_values,
            "image_grid_thw": image_grid_thw,
            "pixel_values_videos": pixel_values_videos,
            "video_grid_thw": video_grid_thw,
        }
        embeds = self.embed(input_ids, input_features, feature_lengths)
        rope = self.backbone.model
        rope.rope_deltas = None  # positions are passed explicitly; never reuse an earlier prompt's offsets
        positions, deltas = rope.get_rope_index(input_ids, types, image_grid_thw, video_grid_thw, attention_mask=mask)
        next_pos = mask.sum(1) + deltas.view(-1).to(mask.device)  # [B] position of each row's next token
        pad = int(self.config.backbone["text_config"].get("pad_token_id") or 0)
        cache = DynamicCache() if use_cache else None
        out = self.backbone(
            input_ids=input_ids,
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            mm_token_type_ids=types,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=True,
            **vision,
        )
        new: list[list[int]] = [[] for _ in range(b)]
        states: list[list[torch.Tensor]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool)
        for step in range(max_new_tokens):
            nxt = out.logits[:, -1].argmax(-1).cpu()  # [B]
            done |= torch.isin(nxt, eos)
            last = out.hidden_states[-1][:, -1]  # [B, D]
            for i in torch.nonzero(~done).view(-1).tolist():
                new[i].append(int(nxt[i]))
                states[i].append(last[i])
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            tok = torch.where(done, pad, nxt)[:, None].to(input_ids.device)  # [B, 1]
            pos = next_pos.view(1, b, 1).expand(3, b, 1)
            next_pos = next_pos + 1
            mask = torch.cat([mask, torch.ones_like(tok)], 1)
            if use_cache:
                out = self.backbone(
                    input_ids=tok,
                    inputs_embeds=self.embed(tok),
                    attention_mask=mask,
                    position_ids=pos,
                    mm_token_type_ids=torch.zeros_like(tok),
                    cache=cache,
                    use_cache=True,
                    output_hidden_states=True,
                )
            else:
                input_ids = torch.cat([input_ids, tok], 1)
                types = torch.cat([types, torch.zeros_like(tok)], 1)
                embeds = torch.cat([embeds, self.embed(tok)], 1)
                positions, _ = rope.get_rope_index(  # from scratch: the reference for `next_pos`
                    input_ids, types, image_grid_thw, video_grid_thw, attention_mask=mask
                )
                out = self.backbone(
                    input_ids=input_ids,
                    inputs_embeds=embeds,
                    attention_mask=mask,
                    position_ids=positions,
                    mm_token_type_ids=types,
                    output_hidden_states=True,
                    **vision,
                )
        width = embeds.shape[-1]
        hidden = [torch.stack(s) if s else embeds.new_zeros(0, width) for s in states]
        return new, hidden

    @torch.no_grad()
    def speech_states(self, input_ids: torch.Tensor, labels: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced LLM hidden states of a known response: -> [1, L_resp, D]."""
        out = self(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels, **inputs)
        hidden, lengths = response_states(out.hidden_states, labels)
        return hidden[:, : int(lengths[0])]

    @torch.no_grad()
    def generate_speech(self, text_hidden: torch.Tensor, max_steps: int | None = None) -> torch.Tensor:
        """text_hidden [L, D] or [1, L, D] -> codec codes [K, T]."""
        hidden = text_hidden if text_hidden.dim() == 3 else text_hidden[None]
        return self.audio_decoder.generate(hidden, max_steps or self.config.audio_decoder.max_steps)

    # -- checkpoints (safetensors + config.json) -------------------------------------------------------
    def save_pretrained(self, directory: Path) -> None:
        """config.json + model.safetensors (tensors cloned: optimizers may keep params as views of flat buffers)."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        state = {k: v.detach().cpu().clone().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt", "size": self.config.size})

    @classmethod
    def from_pretrained(cls, directory: Path) -> NexusOForConditionalGeneration:
        """Load an exported checkpoint (safetensors only: nothing is unpickled)."""
        from safetensors.torch import load_file

        model = cls(NexusOConfig.load(directory))
        model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
        return model.eval()


def response_states(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather hidden states at the response positions (those predicting a labelled token).

    hidden [B, L, D], labels [B, L] -> (states [B, L_max, D] left-aligned, lengths [B]).
    Position i predicts labels[i + 1], so the states are hidden[:, i] where labels[:, i + 1] != -100.
    """
    mask = F.pad(labels[:, 1:] != -100, (0, 1), value=False)  # [B, L]
    lengths = mask.sum(1)
    out = hidden.new_zeros(hidden.shape[0], max(int(lengths.max()), 1), hidden.shape[-1])
    for i in range(hidden.shape[0]):
        sel = hidden[i][mask[i]]
        out[i, : sel.shape[0]] = sel
    return out, lengths.clamp(min=1)
