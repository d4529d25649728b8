"""The evaluation report renders the paper's tables from measured values and marks the missing ones."""

from components.evaluate.report import render


def test_report_tables_hold_the_measured_values_and_na_for_missing() -> None:
    from components.evaluate.alignment import METRICS

    metrics = {"asr_en_wer": 0.25, "asr_en_wer_whisper_tiny": 0.5, "s2tt_bleu_en_zh": 12.34, "spoken_qa_acc_en": 0.5}
    scores = dict.fromkeys(METRICS, 0.5)
    alignment = {
        "n": 20,
        "topk": 5,
        "unembedding": {"language~vision": scores, "language~vision+audio": scores},
        "embedding": {"avg": {"language~vision": [scores, scores | {"cka": 0.875}]}},
    }
    md = render(metrics, alignment, "Evaluation: ckpt", "nexus-o-eval-2")
    assert "| English, all | 25.0 | 50.0 |" in md
    assert "| en → zh | 12.3 |" in md
    assert "| Mandarin, all (CER) | n/a | n/a |" in md  # not measured: says so
    assert "| spoken QA | 50.0 | n/a |" in md
    assert "N=20, k=5" in md and "0.875" in md  # the last layer's value
    assert render(metrics, None, "t", "h").count("Kernel alignment") == 0
