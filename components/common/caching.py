"""Content keys: one per step = sha256(input md5s + resolved step config + code version).

kfp.local's own cache ignores library edits (`use_venv=False`), so every step checks this key itself:
a step whose key matches a finished output (a `_SUCCESS.json` marker in its keyed folder) is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from components.common.config import hash_json
from components.common.paths import PROJECT_ROOT

SUCCESS_MARKER = "_SUCCESS.json"


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5_dir(path: Path) -> str:
    """DVC-compatible directory md5: md5 of the sorted JSON list of {relpath, md5}, suffixed `.dir`."""
    entries = []
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != SUCCESS_MARKER:
            entries.append({"md5": md5_file(p), "relpath": p.relative_to(path).as_posix()})
    blob = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(blob).hexdigest() + ".dir"


def code_version(paths: Iterable[str]) -> str:
    """Hash of the source files under `paths` (repo-relative), so any edit to a step's code changes its key.

    On a cluster image without sources `NEXUS_CODE_VERSION` (the image's git commit) is used instead.
    """
    if env := os.environ.get("NEXUS_CODE_VERSION"):
        return env
    h = hashlib.sha256()
    for rel in sorted(paths):
        root = PROJECT_ROOT / rel
        files = [root] if root.is_file() else sorted(root.rglob("*.py")) + sorted(root.rglob("*.yaml"))
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(f.relative_to(PROJECT_ROOT).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def step_key(step: str, input_md5s: dict[str, str], config: dict[str, Any], code: str) -> str:
    """The step's content key (first 16 hex chars of a sha256)."""
    return hash_json({"step": step, "inputs": input_md5s, "config": config, "code": code})[:16]
