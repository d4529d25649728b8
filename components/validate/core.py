"""Great Expectations guards the manifest (ephemeral context, suite `manifest_v1`).

Two levels:
- Row level: an utterance whose audio is missing/unreadable or whose duration is outside
  [min_duration_s, max_duration_s] is quarantined (`quarantine.jsonl.gz`, with its reason); it is not an error.
  More than `max_quarantine_fraction` quarantined is a dataset error.
- Dataset level (GX suite on the kept rows): unique ids, known lang/split/task values, 16 kHz, durations
  in range, audio present with the recorded duration, at least `min_rows` rows.
A failing suite raises `DataValidationError` naming each failed expectation with example row ids; the full
GX result is written to `validation.json` either way. Kept + quarantined == input rows.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import soundfile as sf

from components.common.config import ValidateConfig
from components.common.manifest import LANGS, SPLITS, TASKS, Utterance, read_records, write_jsonl
from components.common.step import StepContext, StepResult


class DataValidationError(ValueError):
    """The dataset failed its expectation suite."""


def manifest_frame(manifest: Path) -> pd.DataFrame:
    """Manifest rows as a DataFrame plus measured columns (`audio_ok`, `audio_duration_delta_s`)."""
    utts = read_records(manifest, Utterance)
    rows: list[dict[str, Any]] = []
    for u in utts:
        row = asdict(u)
        path = manifest.parent / u.audio_path
        try:
            info = sf.info(str(path))
            row["audio_ok"] = info.channels == 1 and info.samplerate == u.sample_rate
            row["audio_duration_delta_s"] = abs(info.frames / info.samplerate - u.duration_s)
        except (RuntimeError, OSError):
            row["audio_ok"] = False
            row["audio_duration_delta_s"] = float("inf")
        rows.append(row)
    return pd.DataFrame(rows)


def run_suite(df: pd.DataFrame, cfg: ValidateConfig) -> dict[str, Any]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    batch_def = (
        context.data_sources.add_pandas("nexus")
        .add_dataframe_asset("manifest")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="manifest_v1"))
    for exp in (
        gxe.ExpectTableRowCountToBeBetween(min_value=cfg.min_rows),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToNotBeNull(column="text"),
        gxe.ExpectColumnValuesToNotBeNull(column="target"),
        gxe.ExpectColumnValuesToBeInSet(column="lang", value_set=list(LANGS)),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToBeInSet(column="task", value_set=list(TASKS)),
        gxe.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=[16000]),
        gxe.ExpectColumnValuesToBeBetween(
            column="duration_s", min_value=cfg.min_duration_s, max_value=cfg.max_duration_s
        ),
        gxe.ExpectColumnValuesToBeInSet(column="audio_ok", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="audio_duration_delta_s", min_value=0, max_value=0.01),
    ):
        suite.add_expectation(exp)
    vd = context.validation_definitions.add(gx.ValidationDefinition(name="manifest", data=batch_def, suite=suite))
    result = vd.run(batch_parameters={"dataframe": df}, result_format={"result_format": "SUMMARY"})
    out: dict[str, Any] = {"success": bool(result.success), "expectations": []}
    for r in result.results:
        cfg_ = r.expectation_config
        if cfg_ is None:
            raise RuntimeError("Great Expectations returned a result without its expectation configuration")
        kwargs = {k: v for k, v in (cfg_.kwargs or {}).items() if k != "batch_id"}
        res = r.result or {}
        bad_idx = res.get("partial_unexpected_index_list") or []
        out["expectations"].append(
            {
                "type": cfg_.type,
                "kwargs": kwargs,
                "success": bool(r.success),
                "unexpected_count": res.get("unexpected_count"),
                "examples": [str(v) for v in (res.get("partial_unexpected_list") or [])[:5]],
                "example_ids": [str(df.iloc[i]["id"]) for i in bad_idx[:5] if isinstance(i, int) and i < len(df)],
            }
        )
    return out


def row_problem(row: pd.Series, cfg: ValidateConfig) -> str | None:
    if not row["audio_ok"]:
        return "audio missing, unreadable, not mono or wrong sample rate"
    if row["audio_duration_delta_s"] > 0.01:
        return f"audio duration differs from manifest by {row['audio_duration_delta_s']:.3f}s"
    if not cfg.min_duration_s <= row["duration_s"] <= cfg.max_duration_s:
        return f"duration {row['duration_s']:.2f}s outside [{cfg.min_duration_s}, {cfg.max_duration_s}]"
    return None


def validate_manifest(manifest: Path, cfg: ValidateConfig, out_dir: Path) -> dict[str, Any]:
    """Quarantine bad rows, run the suite on the rest, write `manifest.jsonl.gz`/`quarantine.jsonl.gz`."""
    df = manifest_frame(manifest)
    if df.empty:
        raise DataValidationError(f"{manifest}: no rows; check the synthesize step's quarantine list")
    problems = df.apply(lambda r: row_problem(r, cfg), axis=1)
    bad = df[problems.notna()]
    kept = df[problems.isna()].reset_index(drop=True)
    quarantine = [
        {**{k: r[k] for k in ("id", "text", "lang", "audio_path", "duration_s")}, "reason": problems[i]}
        for i, r in bad.iterrows()
    ]
    report_path = out_dir / "validation.json"
    report = run_suite(kept, cfg)
    report["rows_in"], report["rows_kept"], report["rows_quarantined"] = len(df), len(kept), len(bad)
    if len(bad) > cfg.max_quarantine_fraction * len(df):
        report["success"] = False
        report["expectations"].append(
            {
                "type": "max_quarantine_fraction",
                "success": False,
                "kwargs": {"max": cfg.max_quarantine_fraction},
                "unexpected_count": len(bad),
                "examples": [q["reason"] for q in quarantine[:5]],
                "example_ids": [q["id"] for q in quarantine[:5]],
            }
        )
    report_path.write_text(json.dumps(report, indent=2, default=str))
    if not report["success"]:
        failed = [e for e in report["expectations"] if not e["success"]]
        lines = [
            f"  {e['type']} {e['kwargs']}: {e['unexpected_count']} unexpected, e.g. {e['examples'] or e['example_ids']}"
            for e in failed
        ]
        raise DataValidationError(
            f"{manifest}: {len(failed)} expectation(s) failed (report {report_path}):\n"
            + "\n".join(lines)
            + "\nFix the producing step or the data; nothing downstream runs on an invalid dataset."
        )
    utts = read_records(manifest, Utterance)
    keep_ids = set(kept["id"])
    write_jsonl(out_dir / "manifest.jsonl.gz", [u for u in utts if u.id in keep_ids])
    write_jsonl(out_dir / "quarantine.jsonl.gz", quarantine)
    return report


def run(ctx: StepContext) -> StepResult:
    src = ctx.inputs["manifest"]
    report = validate_manifest(src.path("manifest"), ctx.profile.validate_, ctx.out_dir)
    audio = ctx.out_dir / "audio"  # the kept rows' audio stays where synthesize wrote it
    if not audio.exists():
        audio.symlink_to(src.path() / "audio", target_is_directory=True)
    n_exp = len(report["expectations"])
    return StepResult(
        kind="manifest",
        rows=report["rows_kept"],
        files={"manifest": "manifest.jsonl.gz", "quarantine": "quarantine.jsonl.gz", "report": "validation.json"},
        metrics={"expectations": n_exp, "rows_quarantined": report["rows_quarantined"]},
        summary=f"{n_exp}/{n_exp} expectations passed; {report['rows_kept']} kept + "
        f"{report['rows_quarantined']} quarantined = {report['rows_in']} rows",
    )
