"""Client for any OpenAI-compatible chat endpoint (vLLM, TGI, a hosted API): retries with exponential
backoff, a minimum interval between requests (rate limit), and an on-disk cache of answers keyed by
sha256(model, messages) so reruns never pay twice. The API key comes from the environment only.

    client = ChatClient("http://vllm.nexus-o.svc:8000/v1", "Qwen2.5-7B-Instruct", cache=Path("llm-cache.jsonl"))
    client.complete([{"role": "user", "content": "..."}])
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class LLMError(RuntimeError):
    """The endpoint failed after all retries, or answered something that is not a chat completion."""


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        cache: Path | None = None,
        api_key_env: str = "NEXUS_LLM_API_KEY",
        max_retries: int = 4,
        backoff_s: float = 1.0,
        min_interval_s: float = 0.0,
        timeout_s: float = 60.0,
        temperature: float = 0.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.cache_path = model, cache
        self.api_key = os.environ.get(api_key_env, "")
        self.max_retries, self.backoff_s, self.min_interval_s = max_retries, backoff_s, min_interval_s
        self.timeout_s, self.temperature = timeout_s, temperature
        self.requests_made = 0
        self._last = 0.0
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        if cache and cache.exists():
            for line in cache.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._cache[row["key"]] = row["answer"]

    def _key(self, messages: list[dict[str, str]]) -> str:
        blob = json.dumps({"model": self.model, "t": self.temperature, "messages": messages}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def complete(self, messages: list[dict[str, str]]) -> str:
        key = self._key(messages)
        if key in self._cache:
            return self._cache[key]
        answer = self._request(messages)
        self._cache[key] = answer
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "answer": answer}, ensure_ascii=False) + "\n")
        return answer

    def _request(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = ""
        for attempt in range(self.max_retries + 1):
            with self._lock:  # rate limit: at most one request per min_interval_s
                wait = self._last + self.min_interval_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._last = time.monotonic()
            self.requests_made += 1
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    data: Any = json.loads(resp.read())
                return str(data["choices"][0]["message"]["content"]).strip()
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
                if exc.code not in (408, 429, 500, 502, 503, 504):
                    raise LLMError(f"{self.url}: {last_error} (not retried); check the model name and API key") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            except (KeyError, IndexError, json.JSONDecodeError) as exc:
                raise LLMError(f"{self.url}: not an OpenAI-style chat completion ({exc})") from exc
            if attempt < self.max_retries:
                time.sleep(self.backoff_s * 2**attempt)
        raise LLMError(f"{self.url}: failed after {self.max_retries + 1} attempts ({last_error})")
