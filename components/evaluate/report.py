"""The evaluation report: the paper's tables (ASR, S2TT, QA, vision, alignment) as markdown, from the
evaluate step's metrics and alignment report. Cells without a measurement say `n/a`, never a made-up value."""

from __future__ import annotations

from typing import Any

from components.evaluate.alignment import METRICS


def _cell(metrics: dict[str, float], key: str, scale: float = 1.0, digits: int = 1) -> str:
    return f"{metrics[key] * scale:.{digits}f}" if key in metrics else "n/a"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
    ]


def render(metrics: dict[str, float], alignment: dict[str, Any] | None, title: str, harness: str) -> str:
    """Markdown with one table per paper table; percentages for error rates and accuracies."""
    m = metrics
    out = [f"# {title}", "", f"Harness `{harness}`; metric definitions in docs/metrics.md.", ""]
    out += ["## ASR (paper table 4): WER / CER in %, lower is better", ""]
    out += _table(
        ["test set", "Nexus-O", "Whisper tiny.en (same audio)"],
        [
            ["English, all", _cell(m, "asr_en_wer", 100), _cell(m, "asr_en_wer_whisper_tiny", 100)],
            ["English, micro-world", _cell(m, "asr_en_wer_micro", 100), _cell(m, "asr_en_wer_micro_whisper_tiny", 100)],
            ["English, free text", _cell(m, "asr_en_wer_free", 100), _cell(m, "asr_en_wer_free_whisper_tiny", 100)],
            ["Mandarin, all (CER)", _cell(m, "asr_zh_cer", 100), "n/a"],
            ["Mandarin, micro-world (CER)", _cell(m, "asr_zh_cer_micro", 100), "n/a"],
            ["Mandarin, free text (CER)", _cell(m, "asr_zh_cer_free", 100), "n/a"],
        ],
    )
    out += ["## Speech-to-text translation (paper table 5): BLEU", ""]
    out += _table(
        ["direction", "Nexus-O"],
        [["en → zh", _cell(m, "s2tt_bleu_en_zh")], ["zh → en", _cell(m, "s2tt_bleu_zh_en")]],
    )
    out += ["## Spoken QA (paper table 3) and vision QA (paper table 2): accuracy in %", ""]
    out += _table(
        ["task", "en", "zh"],
        [
            ["spoken QA", _cell(m, "spoken_qa_acc_en", 100), _cell(m, "spoken_qa_acc_zh", 100)],
            ["vision QA", _cell(m, "vision_acc_en", 100), _cell(m, "vision_acc_zh", 100)],
        ],
    )
    out += ["## Speech output: Whisper tiny.en WER of generated speech in %", ""]
    out += _table(
        ["Nexus-O speech", "codec2 round trip (ceiling)"],
        [[_cell(m, "tts_asr_wer", 100), _cell(m, "tts_asr_wer_codec_ceiling", 100)]],
    )
    if alignment:
        k = alignment["topk"]
        out += [f"## Kernel alignment, unembedding space (paper table 6): N={alignment['n']}, k={k}", ""]
        out += _table(
            ["pair", *METRICS],
            [[p, *(f"{s[name]:.3f}" for name in METRICS)] for p, s in alignment["unembedding"].items()],
        )
        for pooling, pairs in alignment["embedding"].items():
            out += [f"## Kernel alignment, embedding space, last LLM layer, {pooling} pooling (paper table 7)", ""]
            out += _table(
                ["pair", *METRICS],
                [[p, *(f"{per_layer[-1][name]:.3f}" for name in METRICS)] for p, per_layer in pairs.items()],
            )
        out += ["Per-layer scores: `alignment.json`; plots: `alignment_layers.png`, `pca_unembedding.png`.", ""]
    return "\n".join(out)
