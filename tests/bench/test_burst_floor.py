"""The burst probe's floor: its refusing server answers every request of a real burst."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_request_of_a_burst_gets_the_fixed_refusal() -> None:
    command = ["-m", "bench.burst_floor", "--bursts", "1", "--clients", "20", "--quiet-wait", "0"]
    run = subprocess.run(
        [sys.executable, *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    assert line.startswith("burst 1: {'503': 20}; rejections p50 "), line
    loop_cpu = re.search(r"the server's loop ([0-9.]+) ms of CPU", line)
    assert loop_cpu is not None and float(loop_cpu.group(1)) >= 0, line
