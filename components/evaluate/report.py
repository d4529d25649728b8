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


BASELINE_TITLES = {
    "whisper_tiny": "Whisper tiny.en (same audio)",
    "stage0": "stage 0 checkpoint (untrained audio path)",
    "stage1": "stage 1 checkpoint (aligned only)",
}
ASR_ROWS = [
    ("English, all", "asr_en_wer"),
    ("English, micro-world", "asr_en_wer_micro"),
    ("English, free text", "asr_en_wer_free"),
    ("Mandarin, all (CER)", "asr_zh_cer"),
    ("Mandarin, micro-world (CER)", "asr_zh_cer_micro"),
    ("Mandarin, free text (CER)", "asr_zh_cer_free"),
]
TESTBED_TITLES = {
    "noise": "coloured noise",
    "babble": "three-talker crosstalk",
    "reverb": "reverberant room",
    "recordings": "recordings (refs: the labeler's text)",
}


def render(
    metrics: dict[str, float],
    alignment: dict[str, Any] | None,
    title: str,
    harness: str,
    baselines: list[str] | tuple[str, ...] = ("whisper_tiny",),
) -> str:
    """Markdown with one table per paper table; percentages for error rates and accuracies. `baselines`:
    the metric-name suffixes of the models evaluated beside the candidate on the same audio."""
    m = metrics
    out = [f"# {title}", "", f"Harness `{harness}`; metric definitions in docs/metrics.md.", ""]
    out += ["## ASR (paper table 4): WER / CER in %, lower is better", ""]
    out += _table(
        ["test set", "Nexus-O", *(BASELINE_TITLES.get(b, b) for b in baselines)],
        [[name, _cell(m, key, 100), *(_cell(m, f"{key}_{b}", 100) for b in baselines)] for name, key in ASR_ROWS],
    )
    conditions = sorted(k.removeprefix("eval_items_testbed_") for k in m if k.startswith("eval_items_testbed_"))
    if conditions:
        out += ["## Real-scenario testbed (paper 3.4): English WER in %", ""]
        out += _table(
            ["condition", "items", "Nexus-O", "Whisper tiny.en (same audio)"],
            [
                [
                    TESTBED_TITLES.get(c, c),
                    _cell(m, f"eval_items_testbed_{c}", 1, 0),
                    _cell(m, f"asr_en_wer_testbed_{c}", 100),
                    _cell(m, f"asr_en_wer_testbed_{c}_whisper_tiny", 100),
                ]
                for c in conditions
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
        out += [
            "Per-layer scores: `alignment.json`; plots: `alignment_layers.png` (figure 6), `pca_unembedding.png`"
            " (figure 5), `pca_layers_trimodal.png` and `pca_layers_vision_audio.png` (figures 7-9).",
            "",
        ]
    return "\n".join(out)
