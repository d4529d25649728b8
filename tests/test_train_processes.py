"""Training as real processes: `kill -9` mid-run then rerun ends where an uninterrupted run ends; two
processes (torchrun, gloo) with the same global batch give the same result as one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _helper(*args: str, launcher: list[str] | None = None) -> subprocess.Popen[bytes]:
    cmd = [*(launcher or [sys.executable]), "-m", "tests.train_helper", *args]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]


def test_kill_9_then_rerun_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    steps = ["--steps", "8", "--save-every", "2"]
    _finish(_helper("--state", str(tmp_path / "clean"), "--out", str(tmp_path / "clean.json"), *steps))

    state = tmp_path / "crash"
    victim = _helper("--state", str(state), "--out", str(tmp_path / "crash.json"), *steps, "--sleep", "1.0")
    deadline = time.time() + 240
    while not (state / "latest_step").exists() or (state / "latest_step").read_text() != "step4":
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint at step 4 within 240 s"
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "crash.json").exists()

    _finish(_helper("--state", str(state), "--out", str(tmp_path / "crash.json"), *steps))
    clean, resumed = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("clean", "crash"))
    assert resumed["resumed_from"] == 4 and len(resumed["losses"]) == 4
    # same data order and restored optimizer state: identical up to float summation order
    assert resumed["losses"] == pytest.approx(clean["losses"][4:], rel=1e-5)
    assert resumed["param_sum"] == pytest.approx(clean["param_sum"], rel=1e-6)


def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    """Tolerance: 1e-5 relative on losses and on the trained parameters' sum (gloo all-reduce order)."""
    _finish(_helper("--state", str(tmp_path / "one"), "--out", str(tmp_path / "one.json"), "--steps", "6"))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    two = _helper(
        "--state", str(tmp_path / "two"), "--out", str(tmp_path / "two.json"), "--steps", "6", launcher=torchrun
    )
    _finish(two)
    one, two_ = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two_["losses"] == pytest.approx(one["losses"], rel=1e-5)
    assert two_["param_sum"] == pytest.approx(one["param_sum"], rel=1e-6)
    assert one["losses"][-1] < one["losses"][0]  # it does train
