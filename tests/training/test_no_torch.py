"""On the serving install (`pip install -e .`, no torch) the training commands stop with one
line naming the extra to install, not a ModuleNotFoundError traceback."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.support.hidden_modules import REPO, console_scripts, run_without
from training.cli import TRAIN_EXTRA_MODULES

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

# Every console script of the training package needs torch.
TRAINING_SCRIPTS = sorted(
    name for name, entry in console_scripts().items() if entry.startswith("training.")
)
INSTALL = "pip install -e '.[train]' (CPU machines: see README, \"Training\")"


def test_the_training_scripts_are_gan_train_and_gan_export() -> None:
    assert TRAINING_SCRIPTS == ["gan-export", "gan-train"]


@pytest.mark.parametrize(
    ("script", "work", "argv"),
    [
        ("gan-train", "training", ["--dataset", "fake", "--max-steps", "20", "--out", "{tmp}/r"]),
        ("gan-export", "export", ["{tmp}/r", "--out", "{tmp}/g.onnx"]),
    ],
)
def test_without_torch_a_training_script_names_the_extra_in_one_line(
    tmp_path: Path, script: str, work: str, argv: list[str]
) -> None:
    assert script in TRAINING_SCRIPTS
    done = run_without(["torch"], script, [a.format(tmp=tmp_path) for a in argv])
    assert done.returncode == 2
    assert done.stderr == f"{script}: error: {work} needs PyTorch: {INSTALL}\n"
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


def test_another_missing_module_of_the_extra_is_named_too(tmp_path: Path) -> None:
    done = run_without(["tqdm"], "gan-train", ["--dataset", "fake", "--out", str(tmp_path)])
    assert (done.returncode, done.stderr) == (
        2,
        f"gan-train: error: training needs tqdm: {INSTALL}\n",
    )


def test_the_modules_checked_are_the_train_extra() -> None:
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["train"]
    # distribution names; for these four they are the import names too
    names = {re.match(r"[A-Za-z0-9._-]+", requirement).group(0) for requirement in extra}  # type: ignore[union-attr]
    assert set(TRAIN_EXTRA_MODULES) == names
