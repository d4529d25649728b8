"""Great Expectations guards the manifest (ephemeral context, suite `manifest_v2`).

Two levels:
- Row level: an utterance whose audio (or s2s response audio) is missing/unreadable, whose real duration
  differs from the manifest, or whose duration is outside [min_duration_s, max_duration_s] is quarantined
  (`quarantine.jsonl.gz`, with its reason). More than `max_quarantine_fraction` quarantined is a dataset error.
- Dataset level (the GX suite on the kept rows): row count, unique ids, non-null text/target, lang / split /
  task in their sets, 16 kHz, duration bounds, audio present (all rows) with the recorded duration (a seeded
  sample of `duration_check_sample` rows), text length per language, and no split leakage (a source fact or
  text never appears in two splits).
A failing suite raises `DataValidationError` naming each failed expectation with example row ids and stops
the pipeline before training. The report is written as `validation.json` and `validation.html` either way
and both are logged to the step's MLflow run. Kept + quarantined == input rows.
"""

from __future__ import annotations

import html
import json
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import soundfile as sf

from components.common.config import ValidateConfig
from components.common.manifest import LANGS, SPLITS, TASKS, Utterance, read_records, write_jsonl
from components.common.step import StepContext, StepResult
from components.filter.core import EN_WORD_RE, ZH_CHAR_RE


class DataValidationError(ValueError):
    """The dataset failed its expectation suite."""


def _audio_facts(path: Path, sample_rate: int, duration: float | None) -> tuple[bool, float | None]:
    """(readable mono file at `sample_rate`, |real - manifest| duration or None when not measured)."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError):
        return False, None
    ok = info.channels == 1 and info.samplerate == sample_rate
    return ok, (abs(info.frames / info.samplerate - duration) if duration is not None else None)


def source_key(u: Utterance) -> str:
    """What must not cross splits: the micro-world fact, else the spoken text."""
    return str(u.extra.get("fact") or f"{u.lang}:{u.text}")


def manifest_frame(manifest: Path, cfg: ValidateConfig, seed: int = 0) -> pd.DataFrame:
    """Manifest rows plus measured columns: audio_ok, audio_duration_delta_s (sampled), response_ok,
    text_len_ok, split_leak."""
    utts = read_records(manifest, Utterance)
    measured = set(random.Random(seed).sample(range(len(utts)), min(len(utts), cfg.duration_check_sample)))
    splits_of: dict[str, set[str]] = {}
    for u in utts:
        splits_of.setdefault(source_key(u), set()).add(u.split)
    rows: list[dict[str, Any]] = []
    for i, u in enumerate(utts):
        row = asdict(u)
        row.pop("extra")
        row["audio_ok"], row["audio_duration_delta_s"] = _audio_facts(
            manifest.parent / u.audio_path, u.sample_rate, u.duration_s if i in measured else None
        )
        row["response_ok"] = (
            _audio_facts(manifest.parent / u.response_audio_path, u.sample_rate, None)[0]
            if u.response_audio_path
            else u.task != "s2s"
        )
        row["image_ok"] = (manifest.parent / u.image_path).is_file() if u.image_path else u.task != "vqa"
        units = len(ZH_CHAR_RE.findall(u.text)) if u.lang == "zh" else len(EN_WORD_RE.findall(u.text))
        row["text_len_ok"] = 0 < units <= (cfg.max_zh_chars if u.lang == "zh" else cfg.max_en_words)
        row["split_leak"] = len(splits_of[source_key(u)]) > 1
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
    suite = context.suites.add(gx.ExpectationSuite(name="manifest_v2"))
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
        gxe.ExpectColumnValuesToBeInSet(column="response_ok", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="image_ok", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="text_len_ok", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="split_leak", value_set=[False]),
    ):
        suite.add_expectation(exp)
    vd = context.validation_definitions.add(gx.ValidationDefinition(name="manifest", data=batch_def, suite=suite))
    result = vd.run(batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"})
    out: dict[str, Any] = {"success": bool(result.success), "expectations": []}
    for r in result.results:
        cfg_ = r.expectation_config
        if cfg_ is None:
            raise RuntimeError("Great Expectations returned a result without its expectation configuration")
        kwargs = {k: v for k, v in (cfg_.kwargs or {}).items() if k != "batch_id"}
        res = r.result or {}
        bad_idx = res.get("unexpected_index_list") or []
        out["expectations"].append(
            {
                "type": cfg_.type,
                "kwargs": kwargs,
                "success": bool(r.success),
                "unexpected_count": res.get("unexpected_count"),
                "examples": [str(v) for v in (res.get("partial_unexpected_list") or [])[:5]],
                "example_ids": [str(df.loc[i, "id"]) for i in bad_idx[:5] if i in df.index],
            }
        )
    return out


def row_problem(row: pd.Series, cfg: ValidateConfig) -> str | None:
    if not row["audio_ok"]:
        return "audio missing, unreadable, not mono or wrong sample rate"
    if not row["response_ok"]:
        return "s2s response audio missing or unreadable"
    if not row["image_ok"]:
        return "vqa image missing"
    delta = row["audio_duration_delta_s"]
    if delta is not None and not pd.isna(delta) and delta > 0.01:
        return f"audio duration differs from manifest by {delta:.3f}s"
    if not cfg.min_duration_s <= row["duration_s"] <= cfg.max_duration_s:
        return f"duration {row['duration_s']:.2f}s outside [{cfg.min_duration_s}, {cfg.max_duration_s}]"
    return None


def render_html(report: dict[str, Any], title: str) -> str:
    rows = "".join(
        f"<tr class={'ok' if e['success'] else 'bad'}><td>{'PASS' if e['success'] else 'FAIL'}</td>"
        f"<td>{html.escape(e['type'])}</td><td><code>{html.escape(json.dumps(e['kwargs'], default=str))}</code></td>"
        f"<td>{e.get('unexpected_count') or 0}</td>"
        f"<td>{html.escape(', '.join(e['example_ids'] or e['examples']))}</td></tr>"
        for e in report["expectations"]
    )
    counts = ", ".join(f"{k}={report[k]}" for k in ("rows_in", "rows_kept", "rows_quarantined") if k in report)
    return (
        "<!doctype html><meta charset=utf-8><title>{t}</title><style>body{{font-family:sans-serif}}"
        "td,th{{padding:4px 8px;border-bottom:1px solid #ddd}}.bad{{background:#fdd}}.ok{{background:#efe}}</style>"
        "<h1>{t}</h1><p><b>{v}</b> &middot; {c}</p><table><tr><th></th><th>expectation</th><th>arguments</th>"
        "<th>unexpected</th><th>examples</th></tr>{r}</table>"
    ).format(t=html.escape(title), v="PASSED" if report["success"] else "FAILED", c=counts, r=rows)


def validate_manifest(manifest: Path, cfg: ValidateConfig, out_dir: Path) -> dict[str, Any]:
    """Quarantine bad rows, run the suite on the rest, write manifest/quarantine/validation.{json,html}."""
    df = manifest_frame(manifest, cfg)
    if df.empty:
        raise DataValidationError(f"{manifest}: no rows; check the synthesize step's quarantine list")
    problems = df.apply(lambda r: row_problem(r, cfg), axis=1)
    bad = df[problems.notna()]
    kept = df[problems.isna()].reset_index(drop=True)
    quarantine = [
        {**{k: r[k] for k in ("id", "text", "lang", "task", "audio_path", "duration_s")}, "reason": problems[i]}
        for i, r in bad.iterrows()
    ]
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
    (out_dir / "validation.json").write_text(json.dumps(report, indent=2, default=str))
    (out_dir / "validation.html").write_text(render_html(report, f"Validation of {manifest}"))
    if not report["success"]:
        failed = [e for e in report["expectations"] if not e["success"]]
        lines = [
            f"  {e['type']} {e['kwargs']}: {e['unexpected_count']} unexpected, e.g. {e['example_ids'] or e['examples']}"
            for e in failed
        ]
        raise DataValidationError(
            f"{manifest}: {len(failed)} expectation(s) failed (report {out_dir / 'validation.html'}):\n"
            + "\n".join(lines)
            + "\nFix the producing step or the data; nothing downstream runs on an invalid dataset."
        )
    keep_ids = set(kept["id"])
    write_jsonl(out_dir / "manifest.jsonl.gz", [u for u in read_records(manifest, Utterance) if u.id in keep_ids])
    write_jsonl(out_dir / "quarantine.jsonl.gz", quarantine)
    return report


def run(ctx: StepContext) -> StepResult:
    import mlflow

    src = ctx.inputs["manifest"]
    try:
        report = validate_manifest(src.path("manifest"), ctx.profile.validate_, ctx.out_dir)
    finally:
        for name in ("validation.json", "validation.html"):
            if (ctx.out_dir / name).exists():
                mlflow.log_artifact(str(ctx.out_dir / name), "validation")
    for media in ("audio", "images"):  # the kept rows' media stay where synthesize wrote them
        if (src.path() / media).exists() and not (ctx.out_dir / media).exists():
            (ctx.out_dir / media).symlink_to(src.path() / media, target_is_directory=True)
    n_exp = len(report["expectations"])
    return StepResult(
        kind="manifest",
        rows=report["rows_kept"],
        files={"manifest": "manifest.jsonl.gz", "quarantine": "quarantine.jsonl.gz", "report": "validation.json"},
        metrics={"expectations": n_exp, "rows_quarantined": report["rows_quarantined"]},
        summary=f"{n_exp}/{n_exp} expectations passed; {report['rows_kept']} kept + "
        f"{report['rows_quarantined']} quarantined = {report['rows_in']} rows",
    )
