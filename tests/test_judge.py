"""The local judge (real sentence-embedding model from a package) and the OpenAI-compatible rewrite client
against a local HTTP server that stands in for vLLM (the true external boundary)."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from components.common.config import JudgeConfig, RewriteConfig
from components.common.manifest import TextRecord
from components.judge.core import judge_records, suitability
from components.judge.llm import ChatClient, LLMError


def _rec(i: int, text: str, task: str = "asr", source: str = "fortunes/x") -> TextRecord:
    return TextRecord(f"r{i}", text, "en", source, "train", task, text)


def test_judge_separates_speech_from_code() -> None:
    s = suitability(["a friend in need is a friend indeed", "int x = foo(bar[i]) + 3; return x;"])
    assert s[0] > 0 > s[1]


def test_judge_counts_add_up_and_skips_generated_facts(tmp_path: Path) -> None:
    recs = [
        _rec(0, "an apple a day keeps the doctor away"),
        _rec(1, "<dracus> ls -la | grep foo > out.txt"),
        _rec(2, "#include <stdio.h> int main() {}", source="micro/x"),
        _rec(3, "x = y[i]++;", task="emotion"),
    ]
    kept, rejected = judge_records(recs, JudgeConfig(), tmp_path)
    assert [r["id"] for r in rejected] == ["r1"] and rejected[0]["reason"] == "judge"
    assert len(kept) + len(rejected) == len(recs)
    off_kept, off_rejected = judge_records(recs, JudgeConfig(enabled=False), tmp_path)
    assert off_kept == recs and off_rejected == []


class _Handler(BaseHTTPRequestHandler):
    fail_first = 0
    calls: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"body": body, "auth": self.headers.get("Authorization")})
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        text = body["messages"][-1]["content"].split("Request: ")[-1]
        answer = json.dumps({"question": f"could you tell me, {text}?", "answer": "sure, here you go"})
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def endpoint() -> Iterator[str]:
    _Handler.calls, _Handler.fail_first = [], 0
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_client_retries_caches_and_sends_key(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_LLM_API_KEY", "k-123")
    _Handler.fail_first = 2
    cache = tmp_path / "cache.jsonl"
    client = ChatClient(endpoint, "m", cache=cache, backoff_s=0.01)
    msg = [{"role": "user", "content": "Request: what time is it"}]
    first = client.complete(msg)
    assert "what time is it" in first and client.requests_made == 3  # two 503s, then success
    assert _Handler.calls[-1]["auth"] == "Bearer k-123" and _Handler.calls[-1]["body"]["model"] == "m"
    again = ChatClient(endpoint, "m", cache=cache)
    assert again.complete(msg) == first and again.requests_made == 0  # served from the on-disk cache


def test_client_gives_up_after_bounded_retries(endpoint: str) -> None:
    _Handler.fail_first = 10
    client = ChatClient(endpoint, "m", max_retries=2, backoff_s=0.01)
    with pytest.raises(LLMError, match="failed after 3 attempts"):
        client.complete([{"role": "user", "content": "x"}])


def test_rewrite_through_the_step(endpoint: str, tmp_path: Path) -> None:
    recs = [_rec(0, "what is two plus two", task="chat", source="micro/arithmetic"), _rec(1, "hello there")]
    cfg = JudgeConfig(enabled=False, rewrite=RewriteConfig(enabled=True, url=endpoint, model="m", requests_per_s=100))
    kept, rejected = judge_records(recs, cfg, tmp_path)
    assert rejected == [] and kept[1] == recs[1]
    assert kept[0].text == "could you tell me, what is two plus two?" and kept[0].target == "sure, here you go"
    assert kept[0].extra["rewritten_from"] == "what is two plus two"
