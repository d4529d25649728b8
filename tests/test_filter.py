import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.common.config import FilterConfig
from components.filter.core import classify, filter_jsonl, non_text_ratio

CFG = FilterConfig()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("   \n", "empty"),
        ("see https://example.org/x now", "url"),
        ("mail me at www.debian.org", "url"),
        ("edit /etc/fstab please", "file_path"),
        ("look in ~/notes", "file_path"),
        ("open config/app.yaml now", "file_path"),
        (r"C:\Windows\system32", "file_path"),
        ("the area is $x^2 + y$ here", "latex"),
        (r"write \frac{1}{2} down", "latex"),
        (" ".join(["word"] * 201), "too_long"),
        ("中" * 201, "too_long"),
        ("call 555 1234 5678 now", "non_text_ratio"),
        ("+++ === ~~~ ||| <<>>", "non_text_ratio"),  # math symbols are non-text (#, @, ! are punctuation)
    ],
)
def test_reasons(text: str, reason: str) -> None:
    got = classify(text, CFG)
    assert got is not None and got[0] == reason


@pytest.mark.parametrize(
    "text",
    [
        "yes/no and/or either/or",
        "Alice paid $5 and then Bob paid $10 for the old books.",
        "Hello, world.",
        " ".join(["word"] * 200),
        "中" * 200,
        "床前明月光，疑是地上霜。",
    ],
)
def test_kept(text: str) -> None:
    assert classify(text, CFG) is None


def test_first_reason_wins() -> None:
    # a URL inside a too-long text is reported as url (url comes before too_long)
    assert classify("http://x.org " + " ".join(["w"] * 300), CFG)[0] == "url"  # type: ignore[index]


def test_non_text_ratio_definition() -> None:
    assert non_text_ratio("ab12") == 0.5
    assert non_text_ratio("你好，世界！") == 0.0
    assert non_text_ratio("a b") == 0.0  # whitespace is not counted


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_file_counts_add_up_and_rows_are_preserved(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    _write(
        src,
        [
            json.dumps({"text": "A fine sentence.", "id": 1}).encode(),
            b"\xff\xfe not utf8",
            b"{not json",
            json.dumps({"id": 4}).encode(),
            json.dumps({"text": "see http://a.com", "id": 5}).encode(),
            json.dumps({"text": "", "id": 6}).encode(),
        ],
    )
    counts = filter_jsonl(src, tmp_path / "kept.jsonl", tmp_path / "rej.jsonl", CFG)
    assert counts.total == 6 and counts.kept == 1
    assert counts.rejected["encoding"] == 3 and counts.rejected["url"] == 1 and counts.rejected["empty"] == 1
    kept = [json.loads(x) for x in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert kept == [{"text": "A fine sentence.", "id": 1}]
    rej = [json.loads(x) for x in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rej] == [2, 3, 4, 5, 6]
    assert rej[3]["id"] == 5 and rej[3]["reason"] == "url"


def test_cli(tmp_path: Path) -> None:
    from pipelines.cli import app

    src = tmp_path / "in.jsonl"
    _write(src, [json.dumps({"text": t}).encode() for t in ["Good text.", "bad /usr/bin/env", "ok/no"]])
    res = CliRunner().invoke(
        app,
        [
            "data",
            "filter",
            "--input",
            str(src),
            "--output",
            str(tmp_path / "k.jsonl"),
            "--rejected",
            str(tmp_path / "r.jsonl"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "3 in = 2 kept + 1 rejected" in res.output
    assert "counts add up" in res.output
