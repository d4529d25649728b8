"""Version the validated dataset with DVC: publish it under `data/<profile>/<name>/`, `dvc add`, `dvc push`.

The resulting `data/<profile>/<name>.dvc` (commit it) pins the exact dataset; its md5 travels in the
DatasetRef to every training step and into MLflow, so a model version traces back to its data.
Remotes: `local` -> `$NEXUS_HOME/dvc-remote` (configured in `.dvc/config.local`, never committed);
`minio`/`s3` -> `NEXUS_DVC_REMOTE_URL` (e.g. s3://dvc/nexus-o) with `AWS_ENDPOINT_URL` and credentials from env.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from components.common.manifest import DatasetRef, Utterance, read_records
from components.common.paths import PROJECT_ROOT, nexus_home
from components.common.step import StepContext, StepResult


class DvcError(RuntimeError):
    """A DVC command failed; the message says what to check and carries DVC's output."""


# Bounded retries against S3: botocore's standard retry mode with a small attempt budget.
S3_RETRY_ENV = {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "3"}
_CREDENTIAL_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden")
_ENDPOINT_ERRORS = (
    "Could not connect",
    "Connection refused",
    "EndpointConnectionError",
    "connect timeout",
    "Cannot connect to host",
    "ConnectTimeout",
)


def _hint(output: str) -> str:
    # endpoint first: an unreachable endpoint never answers 403, but its URL may hold "403" (port 40385);
    # error names and codes match as whole words only
    if any(re.search(rf"\b{re.escape(e)}\b", output) for e in _ENDPOINT_ERRORS):
        return (
            "the S3 endpoint is unreachable (after bounded retries): check AWS_ENDPOINT_URL and that the "
            "object store (MinIO) is running"
        )
    if any(re.search(rf"\b{re.escape(e)}\b", output) for e in _CREDENTIAL_ERRORS):
        return (
            "the S3 remote rejected the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
            "(Kubernetes Secret nexus-o-secrets on a cluster)"
        )
    return "see DVC's output below"


def dvc(*args: str, cwd: Path = PROJECT_ROOT, timeout: float = 600) -> str:
    exe = Path(sys.executable).parent / "dvc"
    cmd = [str(exe) if exe.exists() else "dvc", *args]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", **S3_RETRY_ENV}
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DvcError(f"`dvc {' '.join(args)}` did not finish in {timeout:.0f}s: {_hint('connect timeout')}") from exc
    if proc.returncode != 0:
        out = f"{proc.stdout}\n{proc.stderr}"
        raise DvcError(f"`dvc {' '.join(args)}` failed (rc={proc.returncode}): {_hint(out)}\n{out.strip()}")
    return proc.stdout


def configure_remote(name: str, root: Path = PROJECT_ROOT) -> str:
    """Point the named remote at its storage (`.dvc/config.local` only; credentials stay in the environment).

    `local` -> $NEXUS_HOME/dvc-remote; any other name -> NEXUS_DVC_REMOTE_URL (s3://bucket/prefix) with
    AWS_ENDPOINT_URL (MinIO/SeaweedFS) when set.
    """
    if name == "local":
        url = str(nexus_home() / "dvc-remote")
        Path(url).mkdir(parents=True, exist_ok=True)
        dvc("remote", "add", "--local", "--force", "local", url, cwd=root)
    else:
        url = os.environ.get("NEXUS_DVC_REMOTE_URL", "")
        if not url:
            raise DvcError(f"remote {name!r} needs NEXUS_DVC_REMOTE_URL (e.g. s3://dvc/nexus-o) in the environment")
        dvc("remote", "add", "--local", "--force", name, url, cwd=root)
        if endpoint := os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL"):
            dvc("remote", "modify", "--local", name, "endpointurl", endpoint, cwd=root)
    return url


def publish(src: DatasetRef, profile: str, name: str, remote: str, root: Path = PROJECT_ROOT) -> tuple[Path, str]:
    """Copy the dataset's manifest files and referenced audio to data/, dvc add + push. Returns (path, md5)."""
    dest = root / "data" / profile / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    src_dir = Path(src.uri)
    for fname in src.files.values():
        shutil.copy2(src_dir / fname, dest / fname)
    for utt in read_records(src.path("manifest"), Utterance):  # only the audio the kept rows reference
        for rel in filter(None, (utt.audio_path, utt.response_audio_path, utt.image_path)):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            if not (dest / rel).exists():  # several rows (asr + caption) may share one file
                shutil.copy2(src_dir / rel, dest / rel)
    rel = dest.relative_to(root).as_posix()
    configure_remote(remote, root)
    dvc("add", "-q", rel, cwd=root)
    dvc("push", "-r", remote, f"{rel}.dvc", cwd=root)
    meta = yaml.safe_load((dest.parent / f"{name}.dvc").read_text())
    return dest, str(meta["outs"][0]["md5"])


def pull(dvc_file: Path, remote: str, root: Path = PROJECT_ROOT) -> None:
    """Restore a versioned dataset from the remote (e.g. on a fresh machine or pod)."""
    configure_remote(remote, root)
    dvc("pull", "-r", remote, str(dvc_file.relative_to(root)), cwd=root)


def run(ctx: StepContext) -> StepResult:
    src = ctx.inputs["manifest"]
    cfg = ctx.profile.version
    path, md5 = publish(src, ctx.profile.name, cfg.dataset_name, cfg.remote)
    shutil.copy2(path.parent / f"{cfg.dataset_name}.dvc", ctx.out_dir / f"{cfg.dataset_name}.dvc")
    return StepResult(
        kind="dataset",
        rows=src.rows,
        files=src.files,
        uri=str(path),
        md5=md5,
        summary=f"{path.relative_to(PROJECT_ROOT)} @ {md5} pushed to DVC remote {cfg.remote!r}",
    )
