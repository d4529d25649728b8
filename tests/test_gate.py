from components.common.config import GateConfig
from components.gate.core import decide


def test_passes_when_every_threshold_holds() -> None:
    d = decide(
        {"asr_en_wer": 0.3, "vision_acc": 0.8},
        GateConfig(max_metrics={"asr_en_wer": 0.5}, min_metrics={"vision_acc": 0.5}),
    )
    assert d["passed"] and d["reasons"] == [] and len(d["checks"]) == 2


def test_fails_with_reasons() -> None:
    d = decide({"asr_en_wer": 0.9}, GateConfig(max_metrics={"asr_en_wer": 0.5}, min_metrics={"vision_acc": 0.5}))
    assert not d["passed"]
    assert d["reasons"] == ["asr_en_wer=0.9 not <= 0.5", "vision_acc missing from the evaluation"]


def test_boundary_is_inclusive() -> None:
    assert decide({"m": 0.5}, GateConfig(max_metrics={"m": 0.5}, min_metrics={}))["passed"]
    assert decide({"m": 0.5}, GateConfig(max_metrics={}, min_metrics={"m": 0.5}))["passed"]
