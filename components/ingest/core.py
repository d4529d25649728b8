"""Ingest raw text: Debian `fortunes` (en) / `fortunes-zh` (zh), seeded micro-world facts, and any extra
text corpora (`ingest.corpora`: local path, s3:// URI or dvc:// path; one text per line or JSONL).

Splits come from a stable hash of the *source* (the fortune text, or the underlying fact for generated
items), so adding data never moves an old test item into train. Output: `texts.jsonl.gz` of TextRecords.

    from components.ingest.core import ingest_records
    records = ingest_records(load_profile("tiny"))
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import IO

from components.common.config import CorpusConfig, IngestConfig, Profile
from components.common.manifest import TextRecord, write_jsonl
from components.common.step import StepContext, StepResult
from components.ingest import microworld
from components.ingest.microworld import number_to_words, number_to_zh

__all__ = ["ingest_records", "number_to_words", "number_to_zh", "run", "stable_split"]

ZH_FILES = ("chinese", "song100", "tang300")
SKIP_EN = ("art", "ascii-art", "chinese", "song100", "tang300")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def stable_split(source_key: str, cfg: IngestConfig) -> str:
    """train/validation/test from sha256 of the source key: stable under additions."""
    bucket = int(hashlib.sha256(source_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < cfg.test_fraction:
        return "test"
    if bucket < cfg.test_fraction + cfg.validation_fraction:
        return "validation"
    return "train"


def read_fortune_file(path: Path) -> list[str]:
    """Entries of one fortune file (separated by lines holding only `%`), ANSI colour codes removed."""
    text = ANSI.sub("", path.read_text(encoding="utf-8", errors="replace"))
    return [e.strip() for e in re.split(r"^%\s*$", text, flags=re.M) if e.strip()]


def _zh_body(entry: str) -> str:
    lines = [ln.strip() for ln in entry.splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith("《") and not ln.startswith("作者")]
    return "".join(body)


def fortunes(cfg: IngestConfig, lang: str, count: int, rng: random.Random) -> list[TextRecord]:
    root = Path(cfg.fortunes_dir)
    if count and not root.is_dir():
        raise FileNotFoundError(f"{root} missing: install Debian packages `fortunes` and `fortunes-zh` (make setup)")
    if lang == "zh":
        files = [root / n for n in ZH_FILES if (root / n).exists()]
    else:
        files = sorted(p for p in root.iterdir() if p.is_file() and not p.suffix and p.name not in SKIP_EN)
    entries: list[tuple[str, str]] = []
    for f in files:
        for e in read_fortune_file(f):
            text = _zh_body(e) if lang == "zh" else " ".join(e.split())
            if text:
                entries.append((f.name, text))
    entries.sort()
    picked = rng.sample(entries, min(count, len(entries)))
    out = []
    for name, text in picked:
        key = f"fortune:{lang}:{text}"
        rid = f"{lang}-fortune-" + hashlib.sha256(key.encode()).hexdigest()[:10]
        out.append(TextRecord(rid, text, lang, f"fortunes/{name}", stable_split(key, cfg), "asr", text))
    return out


def open_corpus(uri: str) -> IO[str]:
    """A text stream for a local path, an s3:// URI (fsspec/s3fs) or a dvc:// path of this repository."""
    if uri.startswith("dvc://"):
        import dvc.api

        from components.common.paths import PROJECT_ROOT

        return dvc.api.open(uri[len("dvc://") :], repo=str(PROJECT_ROOT), mode="r", encoding="utf-8")  # type: ignore[no-any-return]
    if uri.startswith("s3://"):
        import fsspec

        opts = (
            {"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}}
            if "AWS_ENDPOINT_URL" in os.environ
            else {}
        )
        return fsspec.open(uri, "rt", encoding="utf-8", **opts).open()  # type: ignore[no-any-return]
    path = Path(uri)
    if not path.exists():
        raise FileNotFoundError(f"corpus {uri} not found; give a local path, s3://bucket/key or dvc://path")
    return open(path, encoding="utf-8")


def corpus(cfg: IngestConfig, c: CorpusConfig) -> list[TextRecord]:
    """Records of one extra corpus (asr rows, split by a hash of the text). Malformed lines raise naming the line."""
    out: list[TextRecord] = []
    with open_corpus(c.uri) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if c.format == "jsonl":
                try:
                    text = json.loads(line)["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"{c.uri}:{lineno}: expected a JSON object with a `text` field ({exc})") from exc
            else:
                text = line
            text = " ".join(str(text).split())
            key = f"corpus:{c.lang}:{text}"
            rid = f"{c.lang}-{c.name}-" + hashlib.sha256(key.encode()).hexdigest()[:10]
            out.append(TextRecord(rid, text, c.lang, f"corpus/{c.name}", stable_split(key, cfg), "asr", text))
            if c.limit and len(out) >= c.limit:
                break
    return out


def ingest_records(profile: Profile) -> list[TextRecord]:
    cfg = profile.ingest
    rng = random.Random(profile.seed)
    records = fortunes(cfg, "en", cfg.fortunes_en, rng) + fortunes(cfg, "zh", cfg.fortunes_zh, rng)
    records += microworld.generate(cfg.micro_world, rng, lambda key: stable_split(key, cfg))
    for c in cfg.corpora:
        records += corpus(cfg, c)
    seen: dict[str, TextRecord] = {}
    for r in records:  # the same fact drawn twice is one record
        seen.setdefault(r.id, r)
    return sorted(seen.values(), key=lambda r: r.id)


def run(ctx: StepContext) -> StepResult:
    records = ingest_records(ctx.profile)
    n = write_jsonl(ctx.out_dir / "texts.jsonl.gz", records)
    by_split = Counter(r.split for r in records)
    by_task = Counter(r.task for r in records)
    metrics: dict[str, float] = {"texts_total": n}
    metrics |= {f"texts_{k}": by_split[k] for k in ("train", "validation", "test")}
    metrics |= {f"texts_task_{k}": v for k, v in sorted(by_task.items())}
    return StepResult(
        kind="texts",
        rows=n,
        files={"texts": "texts.jsonl.gz"},
        metrics=metrics,
        summary=f"{n} texts; splits {dict(by_split)}; tasks {dict(by_task)}",
    )
