"""Extra text corpora for ingest: local file, DVC-tracked file (through dvc.api) and S3 (real SeaweedFS)."""

import json
import subprocess
from pathlib import Path

import pytest

from components.common.config import CorpusConfig, IngestConfig, load_profile
from components.ingest.core import corpus

LINES = ["The river runs to the sea.", "A stitch in time saves nine.", "Never put off until tomorrow."]


def test_local_jsonl_and_text(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in LINES))
    (tmp_path / "c.txt").write_text("\n".join(LINES) + "\n\n")
    a = corpus(IngestConfig(), CorpusConfig(name="a", uri=str(tmp_path / "c.jsonl"), lang="en"))
    b = corpus(IngestConfig(), CorpusConfig(name="a", uri=str(tmp_path / "c.txt"), lang="en", format="text", limit=2))
    assert [r.text for r in a] == LINES and [r.text for r in b] == LINES[:2]
    assert [r.split for r in a[:2]] == [r.split for r in b]  # the split follows the text, not the file
    assert {r.source for r in a} == {"corpus/a"} and {r.task for r in a} == {"asr"}


def test_bad_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2"):
        corpus(IngestConfig(), CorpusConfig(name="a", uri=str(tmp_path / "c.jsonl"), lang="en"))


def test_profile_rejects_bad_corpus_entry() -> None:
    from components.common.config import ConfigError

    with pytest.raises(ConfigError, match=r"ingest\.corpora\.0\.lang"):
        load_profile("tiny", {"ingest": {"corpora": [{"name": "x", "uri": "/tmp/x", "lang": "fr"}]}})


def test_dvc_tracked_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import components.common.paths as paths
    from components.version.core import dvc

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc("init", "-q", cwd=repo)
    (repo / "corpus.txt").write_text("\n".join(LINES))
    dvc("add", "-q", "corpus.txt", cwd=repo)
    (repo / "corpus.txt").unlink()  # only the DVC cache holds it now
    monkeypatch.setattr(paths, "PROJECT_ROOT", repo)
    recs = corpus(IngestConfig(), CorpusConfig(name="d", uri="dvc://corpus.txt", lang="en", format="text"))
    assert [r.text for r in recs] == LINES


def test_s3_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    from tests.s3server import SeaweedS3

    with SeaweedS3(tmp_path / "weed", buckets=("corpora",)) as s3:
        for k, v in {
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(k, v)
        fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": s3.endpoint})
        fs.pipe("corpora/zh.txt", "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n".encode())
        recs = corpus(IngestConfig(), CorpusConfig(name="s", uri="s3://corpora/zh.txt", lang="zh", format="text"))
    assert [r.text for r in recs] == ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]
