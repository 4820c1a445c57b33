"""`gan-evaluate` runs on the base install plus the `eval` extra: no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.evaluation.generators import tiny_generator

REPO = Path(__file__).resolve().parents[2]

# Runs gan-evaluate's entry point in a Python where importing torch fails, as if it were
# not installed: a finder ahead of every other on sys.meta_path refuses torch.*.
WITHOUT_TORCH = """
import importlib.abc
import sys


class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is not installed (blocked by the test)")
        return None


sys.meta_path.insert(0, NoTorch())
module, _, function = sys.argv.pop(1).partition(":")
main = getattr(__import__(module, fromlist=[function]), function)
sys.argv[0] = "gan-evaluate"
code = main()
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch imported"
raise SystemExit(code)
"""


def test_gan_evaluate_runs_without_torch(tmp_path: Path) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entry = scripts["gan-evaluate"]
    model = tiny_generator(tmp_path / "tiny.onnx", conditional=True)
    out = tmp_path / "report.json"
    argv = [str(model), "--dataset", "fake", "--n", "60", "--threads", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, entry, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "real vs real" in done.stdout
    assert set(json.loads(out.read_text())["rows"]) == {"model", "real", "untrained"}


def test_the_torch_blocker_really_blocks_torch(tmp_path: Path) -> None:
    # The same shim around an entry point that needs torch (gan-train) must fail on it.
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, scripts["gan-train"], "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0 and "torch is not installed (blocked by the test)" in done.stderr
