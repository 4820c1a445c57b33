"""python -m bench run-length on a real (tiny) generator: every size measured, the JSON beside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import onnx_models as models

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]


def test_every_size_is_timed_alone_and_together_with_its_longest_node(tmp_path: Path) -> None:
    model = models.mlp_generator(tmp_path / "fashion.onnx", conditional=True)
    out = tmp_path / "run-length.json"
    command = [*("--model", str(model), "--sizes", "1", "4", "--threads", "2", "--rounds", "2")]
    run = subprocess.run(
        [sys.executable, "-m", "bench", "run-length", *command, "--images", "8", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["sizes"]
    assert [row["batch"] for row in rows] == [1, 4]
    for row in rows:
        assert row["run_ms"] > 0 and row["together_images_per_s"] > 0
        assert len(row["together_rounds"]) == 2 and 0 < row["longest_node_share"] <= 1
        assert f"| {row['batch']} | {row['run_ms']} |" in run.stdout


def test_a_missing_model_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "run-length", "--model", str(tmp_path / "none.onnx")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "no model file" in run.stderr.strip().splitlines()[-1]
