"""The data contract: typed records in gzipped JSONL, and the small dataset references steps exchange.

Schema version 2 (docs/architecture.md#manifests); v1 rows still read (new fields have defaults):

TextRecord (ingest/filter output, `texts.jsonl.gz`)
    id, text, lang ("en"|"zh"), source, split ("train"|"validation"|"test"), task, target, extra
Utterance (synthesize output, `manifest.jsonl.gz`): a TextRecord plus
    audio_path (relative to the manifest's folder), duration_s, sample_rate, speaker,
    response_audio_path (s2s: the spoken answer; else None), image_path (vqa: the image; else None)

`task` is one of TASKS; `text` is what is spoken (for tts: what is to be spoken) and `target` the
assistant's answer (== text for asr/tts; the label for emotion; the description for caption).
`extra` carries per-task facts: `target_lang` (s2tt), `emotion`, `fact` (micro-world key), `noise_snr_db`.
Bad rows raise `ManifestError` naming file and line.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 2
TASKS = ("asr", "s2tt", "chat", "tts", "s2s", "caption", "emotion", "vqa")
LANGS = ("en", "zh")
SPLITS = ("train", "validation", "test")


class ManifestError(ValueError):
    """A manifest row is malformed; the message names file, line and field."""


@dataclass(frozen=True)
class TextRecord:
    id: str
    text: str
    lang: str
    source: str
    split: str
    task: str
    target: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    lang: str
    source: str
    split: str
    task: str
    target: str
    audio_path: str
    duration_s: float
    sample_rate: int
    speaker: str
    extra: dict[str, Any] = field(default_factory=dict)
    response_audio_path: str | None = None
    image_path: str | None = None


R = TypeVar("R", TextRecord, Utterance)


def _check(rec: TextRecord | Utterance, where: str) -> None:
    if not rec.id:
        raise ManifestError(f"{where}: empty id")
    if rec.lang not in LANGS:
        raise ManifestError(f"{where}: lang {rec.lang!r} not in {LANGS}")
    if rec.split not in SPLITS:
        raise ManifestError(f"{where}: split {rec.split!r} not in {SPLITS}")
    if rec.task not in TASKS:
        raise ManifestError(f"{where}: task {rec.task!r} not in {TASKS}")


def write_jsonl(path: Path, rows: Iterable[Any]) -> int:
    """Write dataclass records or dicts as gzipped JSONL (deterministic: mtime 0). Returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for row in rows:
            obj = asdict(row) if hasattr(row, "__dataclass_fields__") else row
            gz.write((json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n").encode())
            n += 1
    tmp.replace(path)  # atomic: a crash never leaves a half-written manifest
    return n


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or delete the line") from exc


def read_records(path: Path, cls: type[R]) -> list[R]:
    names = {f.name for f in fields(cls)}
    optional = {f.name for f in fields(cls) if f.default is not MISSING or f.default_factory is not MISSING}
    out: list[R] = []
    for lineno, obj in iter_jsonl(path):
        missing = names - set(obj) - optional
        unknown = set(obj) - names
        if missing or unknown:
            raise ManifestError(
                f"{path}:{lineno}: {cls.__name__} row has missing fields {sorted(missing)} / unknown fields "
                f"{sorted(unknown)} (schema version {SCHEMA_VERSION}, docs/architecture.md#manifests)"
            )
        rec = cls(**obj)
        _check(rec, f"{path}:{lineno}")
        out.append(rec)
    return out


@dataclass(frozen=True)
class DatasetRef:
    """What steps pass each other instead of bulk data: where it is, its content hash, its size.

    `uri` is a local path or `s3://` URI of a folder; `md5` the DVC-style md5 of the folder (`<hex>.dir`)
    or of a single file; `files` names the entry points inside it (e.g. {"manifest": "manifest.jsonl.gz"}).
    """

    uri: str
    md5: str
    rows: int
    kind: str
    files: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, blob: str) -> DatasetRef:
        try:
            data = json.loads(blob)
            ref = cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ManifestError(f"not a DatasetRef: {blob[:200]!r} ({exc})") from exc
        if ref.schema_version != SCHEMA_VERSION:
            raise ManifestError(
                f"DatasetRef {ref.uri} has schema version {ref.schema_version}, this code reads {SCHEMA_VERSION}; "
                "rerun the producing step"
            )
        return ref

    def path(self, name: str | None = None) -> Path:
        base = Path(self.uri)
        return base / self.files[name] if name else base
