"""Per stage: exactly the policy's parameter groups receive gradients; one real DeepSpeed step keeps frozen
parameters bit-identical."""

import pytest
import torch

from components.common.config import DeepSpeedConfig, StageConfig
from components.train.freeze import TRAINABLE, apply_freeze_policy, params_digest
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


@pytest.mark.parametrize("n_frozen", [1, 2])
def test_cached_encoder_prefix_gives_the_same_forward(n_frozen: int, tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """Caching the frozen prefix (stem + n layers) changes nothing: same loss, same adapter gradients."""
    from components.train.encoder_cache import cache_encoder_prefix
    from components.train.freeze import frozen_encoder_prefix

    n_layers = len(tiny_model.audio_encoder.encoder.layers)
    stage = 1 if n_frozen < n_layers else 2
    apply_freeze_policy(tiny_model, stage, audio_encoder_trainable_layers=n_layers - n_frozen if stage == 1 else None)
    assert frozen_encoder_prefix(tiny_model) == n_frozen
    samples = [
        processor.encode("asr", audio=speech[0], response="three seven"),
        processor.encode("chat", text="hello", response="world"),
        processor.encode("asr", audio=speech[1], response="two plus five"),
    ]
    plain = tiny_model(**processor.collate(samples))
    plain.loss.backward()
    grad = tiny_model.audio_adapter.fc1.weight.grad.clone()
    tiny_model.zero_grad()
    n, _ = cache_encoder_prefix(tiny_model, samples, n_frozen)
    assert n == 2 and samples[0].features is None and samples[0].encoder_states is not None
    cached_batch = processor.collate(samples)
    assert "input_features" not in cached_batch and int(cached_batch["audio_states_layer"]) == n_frozen
    cached = tiny_model(**cached_batch)
    cached.loss.backward()
    assert torch.allclose(plain.loss, cached.loss, atol=1e-5)
    assert torch.allclose(grad, tiny_model.audio_adapter.fc1.weight.grad, atol=1e-5)


def test_top_k_encoder_layers_knob(tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    apply_freeze_policy(tiny_model, 1, audio_encoder_trainable_layers=1)
    tiny_model(**processor.collate(_batch(1, processor, speech))).loss.backward()
    enc = {n for n, p in tiny_model.named_parameters() if n.startswith("audio_encoder.") and p.grad is not None}
    assert enc and all(
        n.startswith(("audio_encoder.encoder.layers.1.", "audio_encoder.encoder.layer_norm.")) for n in enc
    )
    with pytest.raises(ValueError, match="has 2 layers"):
        apply_freeze_policy(tiny_model, 1, audio_encoder_trainable_layers=3)


def test_consecutive_engines_on_one_model_leave_no_stale_hooks(tmp_path, tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """Stage phases train the same model with a fresh DeepSpeed engine each: ZeRO's gradient hooks of the
    previous engine must be gone (a stale hook crashed the `small` run's second stage-3 phase)."""
    apply_freeze_policy(tiny_model, 1)
    cfg = StageConfig(steps=1, batch_size=1, lr=1e-3, warmup_steps=0, tasks=["asr"])
    for phase in range(2):
        train_stage(
            tiny_model,
            processor,
            _batch(1, processor, speech),
            cfg,
            DeepSpeedConfig(),
            0,
            tmp_path / str(phase),
            lambda k, v, s: None,
        )
        hooks = sum(len(getattr(p, "_post_accumulate_grad_hooks", None) or {}) for p in tiny_model.parameters())
        assert hooks == 0


def test_cached_response_states_give_the_same_stage3_loss(tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    from components.train.encoder_cache import cache_response_states, llm_frozen
    from model.codec import Codec2Codec

    codec = Codec2Codec()
    apply_freeze_policy(tiny_model, 3)
    assert llm_frozen(tiny_model)
    samples = [
        processor.encode(
            "tts", text="three seven one nine", response="three seven one nine", codes=codec.encode(speech[0])
        ),
        processor.encode("s2s", audio=speech[1], response="seven", codes=codec.encode(speech[0])),
    ]
    plain = tiny_model(**processor.collate(samples))
    plain.audio_loss.backward()
    grad = tiny_model.audio_decoder.text_proj.weight.grad.clone()
    tiny_model.zero_grad()
    n, _ = cache_response_states(tiny_model, processor, samples)
    batch = processor.collate(samples)
    assert n == 2 and "input_features" not in batch and batch["text_states"].shape[0] == 2
    cached = tiny_model(**batch)
    cached.loss.backward()
    assert torch.allclose(plain.audio_loss, cached.loss, atol=1e-5)
    assert torch.allclose(grad, tiny_model.audio_decoder.text_proj.weight.grad, atol=1e-5)
    apply_freeze_policy(tiny_model, 2)
    assert not llm_frozen(tiny_model)


def test_oversampling_repeats_a_subset_and_caches_each_sample_once(tmp_path, tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """`oversample` repeats the samples of one task/subset in the epoch; the encoder cache runs each once."""
    import soundfile as sf

    from components.common.manifest import Utterance
    from components.train.data import stage_samples
    from components.train.encoder_cache import cache_encoder_prefix

    (tmp_path / "audio").mkdir()
    rows = []
    for i, source in enumerate(["micro/digits", "fortunes/art", "micro/arithmetic"]):
        sf.write(str(tmp_path / "audio" / f"u{i}.wav"), speech[i % len(speech)], 16000, subtype="PCM_16")
        task = "chat" if i == 2 else "asr"
        rows.append(
            Utterance(f"u{i}", "three", "en", source, "train", task, "three", f"audio/u{i}.wav", 1.0, 16000, "s")
        )
    plain = stage_samples(processor, tmp_path, rows, ["asr", "chat"])
    assert len(plain) == 3
    mixed = stage_samples(processor, tmp_path, rows, ["asr", "chat"], oversample={"asr/micro": 3, "chat": 2})
    assert len(mixed) == 3 + 2 + 1  # micro asr x3, free asr x1, chat x2
    assert mixed[0] is mixed[1] is mixed[2] and mixed[3] is not mixed[0] and mixed[4] is mixed[5]
    micro_only = stage_samples(processor, tmp_path, rows, ["asr", "chat"], subsets=["micro"])
    assert len(micro_only) == 2  # the fortune's row gives nothing
    apply_freeze_policy(tiny_model, 2)
    n, _ = cache_encoder_prefix(tiny_model, mixed, len(tiny_model.audio_encoder.encoder.layers))
    assert n == 3 and all(s.features is None and s.encoder_states is not None for s in mixed)


def test_oversample_keys_are_validated() -> None:
    assert StageConfig(tasks=["asr"], oversample={"asr/micro": 2}).oversample == {"asr/micro": 2}
    with pytest.raises(ValueError, match="oversample key 'vqa'"):
        StageConfig(tasks=["asr"], oversample={"vqa": 2})
    with pytest.raises(ValueError, match="oversample key 'asr/other'"):
        StageConfig(tasks=["asr"], oversample={"asr/other": 2})
    with pytest.raises(ValueError, match="repeat factor"):
        StageConfig(tasks=["asr"], oversample={"asr": 0})


def test_lr_scale_gives_each_group_its_learning_rate(tiny_model) -> None:  # type: ignore[no-untyped-def]
    import typing

    from components.common.config import GroupName
    from components.train.trainer import param_groups
    from model.modeling_nexus_o import PARAMETER_GROUPS, parameter_group

    assert set(typing.get_args(GroupName)) == set(PARAMETER_GROUPS)
    apply_freeze_policy(tiny_model, 1)
    cfg = StageConfig(tasks=["asr"], lr=1e-3, lr_scale={"audio_encoder": 0.1})
    groups = param_groups(tiny_model, cfg)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    got = [(g["lr"], {parameter_group(names[id(p)]) for p in g["params"]}) for g in groups]
    assert got == [(1e-3, {"audio_adapter"}), (pytest.approx(1e-4), {"audio_encoder"})]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in tiny_model.parameters())
    with pytest.raises(ValueError, match="lr_scale"):
        StageConfig(tasks=["asr"], lr_scale={"llm": 0.0})
    with pytest.raises(ValueError):
        StageConfig(tasks=["asr"], lr_scale={"not_a_group": 0.5})


def test_bf16_model_takes_fp32_features_and_cached_states(tiny_model, processor, speech) -> None:  # type: ignore[no-untyped-def]
    """The cluster trains in bf16: fp32 log-mels, cached fp32 encoder states and cached fp32 text states all
    enter a bf16 model (found by the GPU check: conv1 rejected fp32 input)."""
    import numpy as np

    from components.train.encoder_cache import cache_encoder_prefix, cache_response_states
    from model.codec import Codec2Codec

    model = tiny_model.to(torch.bfloat16)
    asr = [processor.encode("asr", audio=speech[0], response="three seven")]
    plain = model(**processor.collate(asr)).loss
    assert torch.isfinite(plain)
    apply_freeze_policy(model, 2)
    cache_encoder_prefix(model, asr, len(model.audio_encoder.encoder.layers))
    assert asr[0].encoder_states is not None and asr[0].encoder_states.dtype == np.float32
    assert torch.allclose(model(**processor.collate(asr)).loss, plain, atol=0.05)
    tts = [processor.encode("tts", text="three", response="three", codes=Codec2Codec().encode(speech[0]))]
    apply_freeze_policy(model, 3)
    cache_response_states(model, processor, tts)
    out = model(**processor.collate(tts))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.audio_decoder.text_proj.weight.grad is not None


def test_params_digest_handles_bf16(tiny_model) -> None:  # type: ignore[no-untyped-def]
    apply_freeze_policy(tiny_model, 1)
    before = params_digest(tiny_model.to(torch.bfloat16), trainable=False)
    assert before == params_digest(tiny_model, trainable=False)
    with torch.no_grad():
        tiny_model.backbone.lm_head.weight[0, 0] += 1.0
    assert params_digest(tiny_model, trainable=False) != before
