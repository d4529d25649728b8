"""Paper 3.2 text filters. Reasons, checked in this order (the first that applies wins):

    encoding        the line is not valid UTF-8, not JSON, or has no string `text` field (row records `line`)
    empty           empty or whitespace-only text
    url             http(s)/ftp/www links, e-mail-style `mailto:`, bare domains such as example.com
    file_path       absolute Unix paths with >= 2 components (/usr/bin), ~/x, ./x, ../x, C:\\x, dir/file.ext
                    (ordinary slashes such as "yes/no" or "and/or" are not paths)
    latex           $...$ / $$...$$ math, \\( \\[ delimiters, common commands (\\frac, \\sum, \\begin, ...)
    too_long        more than `max_en_words` English words or more than `max_zh_chars` Chinese characters
    non_text_ratio  non-text characters / non-whitespace characters > `max_non_text_ratio`, where text
                    characters are Unicode punctuation, a-z/A-Z and Chinese characters (digits and symbols
                    are non-text)

Kept rows are written unchanged; rejected rows get a `reason` (and `detail`). kept + rejected == input lines.

    nexus-o data filter --input IN.jsonl --output KEPT.jsonl --rejected REJ.jsonl
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from components.common.config import FilterConfig
from components.common.step import StepContext, StepResult

REASONS = ("encoding", "empty", "url", "file_path", "latex", "too_long", "non_text_ratio")

URL_RE = re.compile(
    r"(?i)\b(?:https?|ftp|file)://\S+|\bwww\.[\w-]+\.\S+|\bmailto:\S+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|io|de|uk|cn|jp|info|biz)\b(?:/\S*)?"
)
PATH_RE = re.compile(
    r"(?:^|[\s(\"'=])(?:~|\.{1,2})?/[\w.+-]+/[\w.+-/]*"  # /usr/bin, ~/docs/x, ../a/b
    r"|(?:^|[\s(\"'=])(?:~|\.{1,2})/[\w.+-]+"  # ~/x ./x ../x
    r"|\b[A-Za-z]:\\[\w\\. -]+"  # C:\Windows
    r"|\b[\w.-]+/[\w.-]+\.(?:txt|py|c|h|cpp|sh|conf|cfg|ini|log|json|yaml|yml|xml|html?|md|csv|exe|dll|so|tar|gz|zip)\b"
)
LATEX_RE = re.compile(
    r"\$\$.+?\$\$|\$[^$\s](?:[^$]*[^$\s])?\$|\\[(\[]|\\(?:frac|sum|int|prod|sqrt|alpha|beta|gamma|delta|theta|lambda|sigma|"
    r"infty|cdot|times|leq|geq|neq|begin|end|left|right|mathbf|mathrm|mathbb|text|partial)\b",
    re.S,
)
EN_WORD_RE = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
ZH_CHAR_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_text_char(ch: str) -> bool:
    """Text characters: Unicode punctuation, a-z/A-Z, Chinese characters."""
    if ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
        return True
    if ZH_CHAR_RE.match(ch):
        return True
    return unicodedata.category(ch).startswith("P")


def non_text_ratio(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    return sum(not is_text_char(c) for c in chars) / len(chars)


def classify(text: str, cfg: FilterConfig) -> tuple[str, str] | None:
    """Return (reason, detail) for a text that must be rejected, or None to keep it."""
    if not text.strip():
        return "empty", "empty or whitespace-only text"
    if m := URL_RE.search(text):
        return "url", m.group(0)[:80]
    if m := PATH_RE.search(text):
        return "file_path", m.group(0).strip()[:80]
    if m := LATEX_RE.search(text):
        return "latex", m.group(0)[:80]
    words, zh = len(EN_WORD_RE.findall(text)), len(ZH_CHAR_RE.findall(text))
    if words > cfg.max_en_words:
        return "too_long", f"{words} English words > {cfg.max_en_words}"
    if zh > cfg.max_zh_chars:
        return "too_long", f"{zh} Chinese characters > {cfg.max_zh_chars}"
    ratio = non_text_ratio(text)
    if ratio > cfg.max_non_text_ratio:
        return "non_text_ratio", f"non-text ratio {ratio:.3f} > {cfg.max_non_text_ratio}"
    return None


@dataclass
class FilterCounts:
    total: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def check(self) -> None:
        if self.kept + self.rejected_total != self.total:
            raise RuntimeError(f"filter counts do not add up: {self.kept} + {self.rejected_total} != {self.total}")

    def summary(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.rejected.items() if v)
        return (
            f"{self.total} in = {self.kept} kept + {self.rejected_total} rejected ({parts or 'none'})"
            f"{' (counts add up)' if self.kept + self.rejected_total == self.total else ' (MISMATCH)'}"
        )


def _open(path: Path, mode: str) -> IO[bytes]:
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)  # type: ignore[return-value]


def filter_jsonl(src: Path, kept_path: Path, rejected_path: Path, cfg: FilterConfig) -> FilterCounts:
    """Stream `src` (JSONL or JSONL.gz) into kept/rejected files. Every input line lands in exactly one."""
    counts = FilterCounts()
    for p in (kept_path, rejected_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    with _open(src, "rb") as fin, _open(kept_path, "wb") as kept, _open(rejected_path, "wb") as rej:
        for lineno, raw in enumerate(fin, 1):
            counts.total += 1
            reason: tuple[str, str] | None
            obj: Any = None
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = ("encoding", f"not valid UTF-8 at byte {exc.start}")
            else:
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                        reason = ("encoding", "not a JSON object with a string `text` field")
                    else:
                        reason = classify(obj["text"], cfg)
                except json.JSONDecodeError as exc:
                    reason = ("encoding", f"not JSON: {exc.msg}")
            if reason is None:
                kept.write(raw if raw.endswith(b"\n") else raw + b"\n")
                counts.kept += 1
                continue
            counts.rejected[reason[0]] += 1
            if reason[0] == "encoding":
                row = {"line": lineno, "raw": raw.decode("utf-8", errors="replace").rstrip("\n")[:2000]}
            else:
                row = dict(obj)
            row.update(reason=reason[0], detail=reason[1], line=lineno)
            rej.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
    counts.check()
    return counts


def run(ctx: StepContext) -> StepResult:
    src = ctx.inputs["texts"].path("texts")
    counts = filter_jsonl(src, ctx.out_dir / "texts.jsonl.gz", ctx.out_dir / "rejected.jsonl.gz", ctx.profile.filter)
    ctx.log(counts.summary())
    metrics: dict[str, float] = {
        "filter_in": counts.total,
        "filter_kept": counts.kept,
        "filter_rejected": counts.rejected_total,
    }
    metrics |= {f"filter_rejected_{k}": v for k, v in counts.rejected.items()}
    return StepResult(
        kind="texts",
        rows=counts.kept,
        files={"texts": "texts.jsonl.gz", "rejected": "rejected.jsonl.gz"},
        metrics=metrics,
        summary=counts.summary(),
    )
