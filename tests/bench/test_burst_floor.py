"""The burst probe's floor: its refusing server answers every request of a real burst, and the
figures it prints are measurements (ordered percentiles, the loop's CPU in clock ticks)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"burst 1: \{'503': 20\}; rejections p50 (?P<p50>[0-9.]+) / max (?P<max>[0-9.]+) ms; "
    r"connection set-up max [0-9.]+ ms; the server's loop (?P<cpu>[0-9.]+) ms of CPU"
)


def test_every_request_of_a_burst_gets_the_fixed_refusal() -> None:
    command = ["bench", "burst-floor", "--bursts", "1", "--clients", "20", "--quiet-wait", "0"]
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall_ms = 1000 * (time.monotonic() - started)
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    found = LINE.fullmatch(line)
    assert found is not None, line
    assert float(found["p50"]) <= float(found["max"]), line
    # The server's main thread, read from /proc before and after: a whole number of clock
    # ticks, and no more CPU than the run had wall time.
    loop_cpu_ms, tick_ms = float(found["cpu"]), 1000 / os.sysconf("SC_CLK_TCK")
    assert 0 <= loop_cpu_ms <= wall_ms, line
    assert abs(loop_cpu_ms / tick_ms - round(loop_cpu_ms / tick_ms)) < 0.01, line
