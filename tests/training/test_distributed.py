"""torchrun with 2 CPU processes (gloo): one run directory, rank-0 outputs, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.helpers import load_state, tiny_cli_args

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training.cli",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=240)


def test_two_processes_train_and_resume(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    started = time.perf_counter()
    first = _torchrun(*tiny_cli_args(run, "--epochs", "1", "--log-every", "4"))
    wall_s = time.perf_counter() - started
    assert first.returncode == 0, first.stderr
    state = load_state(run)
    # 2048 images split over 2 ranks, batch 64 each: 16 steps per epoch
    assert state["step"] == 16 and state["epoch"] == 1
    assert len(state["rng"]) == 2  # each rank's RNG state, for an exact resume
    assert first.stderr.count("done: 16 steps") == 2  # both ranks finish, only rank 0 logs
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == [4, 8, 12, 16]
    # a window's rate counts every rank's images (4 steps x 2 ranks x 64) over the window's
    # time, which is part of the whole run's: so at least those images over the run's time
    assert records[0]["images_per_s"] >= 4 * 2 * 64 / wall_s

    second = _torchrun("--out", str(run), "--resume", "--epochs", "2")
    assert second.returncode == 0, second.stderr
    resumed = load_state(run)
    assert resumed["step"] == 32 and resumed["epoch"] == 2
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch-0001.png",
        "epoch-0002.png",
    ]
