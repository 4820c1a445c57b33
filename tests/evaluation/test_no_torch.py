"""`gan-evaluate` runs on the base install plus the `eval` extra: no torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evaluation.generators import tiny_generator
from tests.support.hidden_modules import run_without

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


def test_gan_evaluate_runs_without_torch(tmp_path: Path) -> None:
    model = tiny_generator(tmp_path / "tiny.onnx", conditional=True)
    out = tmp_path / "report.json"
    argv = [str(model), "--dataset", "fake", "--n", "60", "--threads", "1", "--out", str(out)]
    done = run_without(["torch"], "gan-evaluate", argv)
    assert done.returncode == 0, done.stderr
    assert "real vs real" in done.stdout
    assert set(json.loads(out.read_text())["rows"]) == {"model", "real", "untrained"}


def test_retraining_the_evaluator_without_torch_names_the_extra_in_one_line() -> None:
    prog = "python -m evaluation.train_feature_net"
    done = run_without(["torch"], prog, [], entry="evaluation.train_feature_net:main")
    assert (done.returncode, done.stderr) == (
        2,
        f"{prog}: error: retraining the evaluator needs PyTorch: pip install -e '.[train]' "
        '(CPU machines: see README, "Training")\n',
    )
