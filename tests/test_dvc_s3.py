"""DVC remote on S3 against a real local S3 server (SeaweedFS): push, pull into an empty cache, wrong
credentials and a dead endpoint give clear errors."""

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from components.common.manifest import DatasetRef, Utterance, write_jsonl
from components.version.core import DvcError, dvc, publish, pull
from tests.s3server import SeaweedS3, free_port


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc("init", "-q", cwd=root)
    return root


@pytest.fixture()
def dataset(tmp_path: Path) -> DatasetRef:
    src = tmp_path / "src"
    (src / "audio").mkdir(parents=True)
    utts = []
    for i in range(3):
        sf.write(str(src / "audio" / f"u{i}.wav"), np.sin(np.arange(8000) * (i + 1) / 20).astype(np.float32), 16000)
        utts.append(Utterance(f"u{i}", "hi", "en", "t", "train", "asr", "hi", f"audio/u{i}.wav", 0.5, 16000, "s"))
    write_jsonl(src / "manifest.jsonl.gz", utts)
    return DatasetRef(str(src), "x", 3, "manifest", {"manifest": "manifest.jsonl.gz"})


def _env(
    monkeypatch: pytest.MonkeyPatch, s3: SeaweedS3, secret: str | None = None, endpoint: str | None = None
) -> None:
    monkeypatch.setenv("NEXUS_DVC_REMOTE_URL", "s3://dvc/nexus-o")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint or s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret or s3.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_push_then_pull_into_an_empty_cache(monkeypatch, s3, repo, dataset) -> None:  # type: ignore[no-untyped-def]
    _env(monkeypatch, s3)
    path, md5 = publish(dataset, "s3test", "speech", "minio", root=repo)
    assert md5.endswith(".dir")
    before = {p.name: p.read_bytes() for p in (path / "audio").iterdir()}
    shutil.rmtree(path)
    shutil.rmtree(repo / ".dvc" / "cache")
    pull(repo / "data" / "s3test" / "speech.dvc", "minio", root=repo)
    assert {p.name: p.read_bytes() for p in (path / "audio").iterdir()} == before
    status = json.loads(dvc("status", "--json", cwd=repo) or "{}")
    assert status == {}


def test_wrong_credentials_are_named(monkeypatch, s3, repo, dataset) -> None:  # type: ignore[no-untyped-def]
    _env(monkeypatch, s3, secret="not-the-secret")
    with pytest.raises(DvcError, match="rejected the credentials"):
        publish(dataset, "s3test", "speech", "minio", root=repo)


def test_dead_endpoint_fails_clearly_after_bounded_retries(monkeypatch, s3, repo, dataset) -> None:  # type: ignore[no-untyped-def]
    _env(monkeypatch, s3, endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DvcError, match="unreachable"):
        publish(dataset, "s3test", "speech", "minio", root=repo)


def test_hint_names_the_cause_whole_words_only() -> None:
    """A port such as 40385 in an unreachable endpoint's URL is not an HTTP 403 (a flaky CI failure)."""
    from components.version.core import _hint

    dead = 'ERROR: unexpected error - Could not connect to the endpoint URL: "http://127.0.0.1:40385/dvc/x"'
    assert "unreachable" in _hint(dead)
    assert "credentials" in _hint("An error occurred (403) when calling the HeadObject operation: Forbidden")
    assert "credentials" in _hint("InvalidAccessKeyId: The AWS Access Key Id you provided does not exist")
    assert _hint("something else at port 14035") == "see DVC's output below"
