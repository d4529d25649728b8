"""Shared fixtures: an isolated NEXUS_HOME per test session, offline env, a tiny tokenizer/model."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")


@pytest.fixture(scope="session")
def tokenizer():  # type: ignore[no-untyped-def]
    from model.tokenizer import train_tokenizer

    texts = ["three seven one nine", "what is two plus five", "hello world", "四十二", "forty two"] * 5
    return train_tokenizer(texts, 320)


@pytest.fixture()
def tiny_model(tokenizer):  # type: ignore[no-untyped-def]
    import torch

    from model.builders import build_model

    torch.manual_seed(0)
    return build_model("tiny", len(tokenizer))


@pytest.fixture(scope="session")
def processor(tokenizer):  # type: ignore[no-untyped-def]
    from model.processor import NexusOProcessor

    return NexusOProcessor.build(tokenizer)


@pytest.fixture(scope="session")
def speech():  # type: ignore[no-untyped-def]
    """Two real espeak-ng utterances at 16 kHz."""
    from components.synthesize.core import EspeakBackend, parse_speaker

    b = EspeakBackend()
    return [
        b.synthesize("three seven one nine", "en", parse_speaker("en-us:p50:s170"), 16000),
        b.synthesize("what is two plus five", "en", parse_speaker("en-gb:p40:s150"), 16000),
    ]
