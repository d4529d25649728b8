"""Gate: absolute thresholds from the profile (`gate.max_metrics`, `gate.min_metrics`).

A failing gate is a successful step that records why (`gate.json`) and blocks registration; it never fails
the pipeline run. Champion comparison and paired bootstrap come with issue 7.
"""

from __future__ import annotations

import json
from typing import Any

from components.common.config import GateConfig
from components.common.step import StepContext, StepResult


def decide(metrics: dict[str, float], cfg: GateConfig) -> dict[str, Any]:
    checks = []
    for op, limits in (("<=", cfg.max_metrics), (">=", cfg.min_metrics)):
        for name, limit in limits.items():
            value = metrics.get(name)
            ok = value is not None and (value <= limit if op == "<=" else value >= limit)
            checks.append({"metric": name, "op": op, "threshold": limit, "value": value, "passed": ok})
    failed = [c for c in checks if not c["passed"]]
    reasons = [
        f"{c['metric']}={c['value']} not {c['op']} {c['threshold']}"
        if c["value"] is not None
        else f"{c['metric']} missing from the evaluation"
        for c in failed
    ]
    return {"passed": not failed, "checks": checks, "reasons": reasons}


def run(ctx: StepContext) -> StepResult:
    metrics = json.loads(ctx.inputs["evaluation"].path("metrics").read_text())
    decision = decide(metrics, ctx.profile.gate)
    (ctx.out_dir / "gate.json").write_text(json.dumps(decision, indent=2))
    verdict = "PASSED" if decision["passed"] else "FAILED: " + "; ".join(decision["reasons"])
    ctx.log(f"gate {verdict}")
    return StepResult(
        kind="gate",
        rows=1,
        files={"decision": "gate.json"},
        metrics={"gate_passed": float(decision["passed"])},
        headline=("gate_passed",),
        summary=verdict,
    )
