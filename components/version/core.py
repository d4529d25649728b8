"""Version the validated dataset with DVC: publish it under `data/<profile>/<name>/`, `dvc add`, `dvc push`.

The resulting `data/<profile>/<name>.dvc` (commit it) pins the exact dataset; its md5 travels in the
DatasetRef to every training step and into MLflow, so a model version traces back to its data.
Remotes: `local` -> `$NEXUS_HOME/dvc-remote` (configured in `.dvc/config.local`, never committed);
`minio`/`s3` -> `NEXUS_DVC_REMOTE_URL` (e.g. s3://dvc/nexus-o) with `AWS_ENDPOINT_URL` and credentials from env.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from components.common.manifest import DatasetRef, Utterance, read_records
from components.common.paths import PROJECT_ROOT, nexus_home
from components.common.step import StepContext, StepResult


class DvcError(RuntimeError):
    """A DVC command failed; the message carries its output."""


def dvc(*args: str, cwd: Path = PROJECT_ROOT) -> str:
    exe = Path(sys.executable).parent / "dvc"
    cmd = [str(exe) if exe.exists() else "dvc", *args]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise DvcError(f"`dvc {' '.join(args)}` failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def configure_remote(name: str) -> str:
    """Point the named remote at its storage (local config only; secrets stay in env)."""
    if name == "local":
        url = str(nexus_home() / "dvc-remote")
        Path(url).mkdir(parents=True, exist_ok=True)
        dvc("remote", "add", "--local", "--force", "local", url)
    else:
        url = os.environ.get("NEXUS_DVC_REMOTE_URL", "")
        if not url:
            raise DvcError(f"remote {name!r} needs NEXUS_DVC_REMOTE_URL (e.g. s3://dvc/nexus-o) in the environment")
        dvc("remote", "add", "--local", "--force", name, url)
        if endpoint := os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL"):
            dvc("remote", "modify", "--local", name, "endpointurl", endpoint)
    return url


def publish(src: DatasetRef, profile: str, name: str, remote: str) -> tuple[Path, str]:
    """Copy the dataset's manifest files and referenced audio to data/, dvc add + push. Returns (path, md5)."""
    dest = PROJECT_ROOT / "data" / profile / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    src_dir = Path(src.uri)
    for fname in src.files.values():
        shutil.copy2(src_dir / fname, dest / fname)
    for utt in read_records(src.path("manifest"), Utterance):  # only the audio the kept rows reference
        for rel in filter(None, (utt.audio_path, utt.response_audio_path)):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            if not (dest / rel).exists():  # several rows (asr + caption) may share one file
                shutil.copy2(src_dir / rel, dest / rel)
    rel = dest.relative_to(PROJECT_ROOT).as_posix()
    configure_remote(remote)
    dvc("add", "-q", rel)
    dvc("push", "-q", "-r", remote, f"{rel}.dvc")
    meta = yaml.safe_load((dest.parent / f"{name}.dvc").read_text())
    return dest, str(meta["outs"][0]["md5"])


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
