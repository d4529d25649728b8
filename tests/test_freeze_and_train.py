"""Per stage: exactly the policy's parameter groups receive gradients; one real DeepSpeed step keeps frozen
parameters bit-identical."""

import pytest
import torch

from components.common.config import DeepSpeedConfig, StageConfig
from components.train.core import params_digest
from components.train.freeze import TRAINABLE, apply_freeze_policy
from components.train.trainer import train_stage

EXPECTED = {
    0: {"vision_encoder", "vision_adapter", "llm", "lm_head"},
    1: {"audio_encoder", "audio_adapter"},
    2: {"audio_adapter", "vision_adapter", "llm", "lm_head"},
    3: {"audio_decoder"},
}


def group(name: str) -> str:
    from model.modeling_nexus_o import parameter_group

    return parameter_group(name)


def _batch(stage: int, processor, speech):  # type: ignore[no-untyped-def]
    import numpy as np
    from PIL import Image

    from model.codec import Codec2Codec

    if stage == 3:
        return [processor.encode("tts", text="three", response="three", codes=Codec2Codec().encode(speech[0]))]
    img = Image.fromarray((np.random.default_rng(0).random((56, 56, 3)) * 255).astype("uint8"))
    if stage == 0:  # stage 0 never sees audio: the text version of asr + an image question
        return [
            processor.encode("asr", spoken="three seven", response="three seven"),
            processor.encode("vqa", image=img, text="what digit is this", response="three"),
        ]
    return [processor.encode("asr", audio=speech[0], image=img, response="three seven")]


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_gradients_follow_policy(stage: int, tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    apply_freeze_policy(tiny_model, stage)
    out = tiny_model(**processor.collate(_batch(stage, processor, speech)))
    out.loss.backward()
    got = {group(n) for n, p in tiny_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got == EXPECTED[stage]
    assert set(TRAINABLE) == {0, 1, 2, 3}


@pytest.mark.parametrize("stage", [1, 3])
def test_one_deepspeed_step_per_stage(stage: int, tmp_path, tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    apply_freeze_policy(tiny_model, stage)
    frozen = params_digest(tiny_model, trainable=False)
    trainable = params_digest(tiny_model, trainable=True)
    cfg = StageConfig(steps=2, batch_size=1, lr=1e-2, warmup_steps=0, tasks=["tts"] if stage == 3 else ["asr"])
    losses: list[float] = []
    report = train_stage(
        tiny_model,
        processor,
        _batch(stage, processor, speech),
        cfg,
        DeepSpeedConfig(),
        0,
        tmp_path / "ds",
        lambda k, v, s: losses.append(v) if k == "train_loss" else None,
    )
    assert len(report.losses) == 2 and all(torch.isfinite(torch.tensor(report.losses)))
    assert params_digest(tiny_model, trainable=False) == frozen
    assert params_digest(tiny_model, trainable=True) != trainable


def test_training_resumes_from_its_own_state(tmp_path, tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """A run that saved DeepSpeed state at step 1 and then 'crashed' resumes there instead of restarting."""
    from model.builders import build_model

    apply_freeze_policy(tiny_model, 1)
    cfg = StageConfig(steps=2, batch_size=1, lr=1e-3, warmup_steps=0, tasks=["asr"])
    state = tmp_path / "ds"
    first = train_stage(
        tiny_model,
        processor,
        _batch(1, processor, speech),
        cfg,
        DeepSpeedConfig(),
        0,
        state,
        lambda k, v, s: None,
        save_every=1,
    )
    assert first.resumed_from_step == 0 and (state / "latest_step").read_text() == "step1"
    fresh = build_model("tiny", len(processor.tokenizer))
    apply_freeze_policy(fresh, 1)
    second = train_stage(
        fresh,
        processor,
        _batch(1, processor, speech),
        cfg,
        DeepSpeedConfig(),
        0,
        state,
        lambda k, v, s: None,
        save_every=1,
    )
    assert second.resumed_from_step == 1 and len(second.losses) == 1


def test_every_parameter_has_one_named_group(tiny_model) -> None:  # type: ignore[no-untyped-def]
    from model.modeling_nexus_o import PARAMETER_GROUPS, parameter_group

    seen = {parameter_group(n) for n, _ in tiny_model.named_parameters()}
    assert seen == set(PARAMETER_GROUPS) - {"new_token_embeddings"}  # only pretrained backbones (test_pretrained)
    names = dict(tiny_model.named_parameters())
    assert parameter_group(next(n for n in names if n.startswith("backbone.model.visual.merger."))) == "vision_adapter"
    assert parameter_group(next(n for n in names if n.startswith("backbone.model.visual.blocks."))) == "vision_encoder"
    assert parameter_group("backbone.model.language_model.embed_tokens.weight") == "llm"
