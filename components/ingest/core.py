"""Ingest raw text: Debian `fortunes` (en) / `fortunes-zh` (zh) and seeded micro-world facts.

Splits come from a stable hash of the *source* (the fortune text, or the underlying fact for generated
items), so adding data never moves an old test item into train. Output: `texts.jsonl.gz` of TextRecords.

    from components.ingest.core import ingest_records
    records = ingest_records(load_profile("tiny"))
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

from components.common.config import IngestConfig, Profile
from components.common.manifest import TextRecord, write_jsonl
from components.common.step import StepContext, StepResult

ZH_FILES = ("chinese", "song100", "tang300")
SKIP_EN = ("art", "ascii-art", "chinese", "song100", "tang300")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ZH_DIGITS = "零一二三四五六七八九"


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1000 ("forty two", "three hundred and five")."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_to_words supports 0..999, got {n}")
    if n < 10:
        return ONES[n]
    if n < 20:
        return TEENS[n - 10]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_to_words(rest))


def number_to_zh(n: int) -> str:
    """Chinese numerals for 0 <= n < 1000 (四十二, 三百零五)."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_to_zh supports 0..999, got {n}")
    if n < 10:
        return ZH_DIGITS[n]
    if n < 20:
        return "十" + ("" if n == 10 else ZH_DIGITS[n % 10])
    if n < 100:
        return ZH_DIGITS[n // 10] + "十" + ("" if n % 10 == 0 else ZH_DIGITS[n % 10])
    rest = n % 100
    if rest == 0:
        return ZH_DIGITS[n // 100] + "百"
    if rest < 10:
        return ZH_DIGITS[n // 100] + "百零" + ZH_DIGITS[rest]
    tail = number_to_zh(rest)
    return ZH_DIGITS[n // 100] + "百" + ("一" + tail if rest < 20 else tail)


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


def micro_world(cfg: IngestConfig, rng: random.Random) -> list[TextRecord]:
    """Seeded facts with known answers: digit strings (asr), arithmetic (chat), number translation (s2tt)."""
    mw = cfg.micro_world
    out: list[TextRecord] = []
    for _ in range(mw.digit_strings):
        digits = [rng.randrange(10) for _ in range(rng.randint(3, 6))]
        key = "digits:" + "".join(map(str, digits))
        text = " ".join(ONES[d] for d in digits)
        out.append(TextRecord("en-digits-" + key[7:], text, "en", "micro/digits", stable_split(key, cfg), "asr", text))
    for _ in range(mw.arithmetic):
        a, b = rng.randrange(10), rng.randrange(10)
        op = rng.choice(["plus", "times"])
        ans = a + b if op == "plus" else a * b
        key = f"arith:{a}{op}{b}"
        out.append(
            TextRecord(
                f"en-arith-{a}{op}{b}",
                f"what is {ONES[a]} {op} {ONES[b]}",
                "en",
                "micro/arithmetic",
                stable_split(key, cfg),
                "chat",
                number_to_words(ans),
            )
        )
    for _ in range(mw.number_translation):
        n = rng.randrange(1, 100)
        key = f"numtr:{n}"
        if rng.random() < 0.5:
            rec = TextRecord(
                f"en-numtr-{n}",
                number_to_words(n),
                "en",
                "micro/number_translation",
                stable_split(key, cfg),
                "s2tt",
                number_to_zh(n),
                {"target_lang": "zh"},
            )
        else:
            rec = TextRecord(
                f"zh-numtr-{n}",
                number_to_zh(n),
                "zh",
                "micro/number_translation",
                stable_split(key, cfg),
                "s2tt",
                number_to_words(n),
                {"target_lang": "en"},
            )
        out.append(rec)
    return out


def ingest_records(profile: Profile) -> list[TextRecord]:
    cfg = profile.ingest
    rng = random.Random(profile.seed)
    records = fortunes(cfg, "en", cfg.fortunes_en, rng) + fortunes(cfg, "zh", cfg.fortunes_zh, rng)
    records += micro_world(cfg, rng)
    seen: dict[str, TextRecord] = {}
    for r in records:  # the same fact drawn twice is one record
        seen.setdefault(r.id, r)
    return sorted(seen.values(), key=lambda r: r.id)


def run(ctx: StepContext) -> StepResult:
    records = ingest_records(ctx.profile)
    n = write_jsonl(ctx.out_dir / "texts.jsonl.gz", records)
    by_split = {s: sum(r.split == s for r in records) for s in ("train", "validation", "test")}
    return StepResult(
        kind="texts",
        rows=n,
        files={"texts": "texts.jsonl.gz"},
        metrics={"texts_total": n, **{f"texts_{k}": v for k, v in by_split.items()}},
        summary=f"{n} texts ({by_split})",
    )
