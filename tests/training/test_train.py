"""The training loop: learning signal, exact resume, run directories, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.helpers import (
    TRAINED_STATE,
    assert_same_tensors,
    load_state,
    tiny_cli_args,
    tiny_config,
)
from training.train import TrainingError, train

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_a_few_steps_move_d_of_real_and_fake_apart(run_dir: Path, arch: str) -> None:
    widths = {"g_width": 16, "d_width": 16} if arch == "mlp" else {"g_width": 8, "d_width": 8}
    # A larger learning rate than the default so the signal shows within 32 steps.
    train(tiny_config(run_dir, arch=arch, max_steps=32, log_every=2, lr=1e-3, **widths))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if r["kind"] == "step"]
    gaps = [r["d_real"] - r["d_fake"] for r in steps]
    later = gaps[len(gaps) // 2 :]
    assert min(later) > 0, gaps
    assert sum(later) / len(later) > gaps[0] + 0.1, gaps


def test_two_epochs_equal_one_plus_resume_plus_one(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(tiny_config(straight, epochs=2, conditional=True))
    train(tiny_config(resumed, epochs=1, conditional=True))
    train(tiny_config(resumed, epochs=2, conditional=True), resume=True)
    a, b = load_state(straight), load_state(resumed)
    assert a["step"] == b["step"] == 64
    for key in TRAINED_STATE:
        assert_same_tensors(a[key], b[key], key)


def test_resume_mid_epoch_is_exact_too(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(tiny_config(straight, epochs=1, arch="mlp", g_width=16, d_width=16, d_steps=2))
    train(
        tiny_config(resumed, epochs=1, arch="mlp", g_width=16, d_width=16, d_steps=2, max_steps=5)
    )
    assert load_state(resumed)["batch_in_epoch"] == 5
    train(
        tiny_config(resumed, epochs=1, arch="mlp", g_width=16, d_width=16, d_steps=2), resume=True
    )
    a, b = load_state(straight), load_state(resumed)
    for key in ("generator", "discriminator", "opt_generator", "step"):
        assert_same_tensors(a[key], b[key], key)


def test_run_directory_holds_config_metrics_samples_and_curves(run_dir: Path) -> None:
    train(tiny_config(run_dir, epochs=2, keep=1, conditional=True))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["arch"] == "dcgan" and config["lr"] == 2e-4 and config["beta1"] == 0.5
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds.count("epoch") == 2 and "step" in kinds
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "epoch-0001.png",
        "epoch-0002.png",
    ]
    assert (run_dir / "curves.png").stat().st_size > 1000
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "epoch-0002.pt",
        "last.pt",
    ]
    state = load_state(run_dir)
    assert state["dataset_fingerprint"] and set(state["rng"][0]) >= {"torch", "numpy", "python"}


def test_conditional_sample_grid_has_one_row_per_class(run_dir: Path) -> None:
    from PIL import Image

    train(tiny_config(run_dir, conditional=True, max_steps=2))
    (grid,) = (run_dir / "samples").iterdir()
    with Image.open(grid) as image:
        width, height = image.size
    assert (width, height) == (2 + 8 * 30, 2 + 10 * 30)  # 8 columns, 10 classes, 2 px gaps


def test_a_non_empty_run_directory_is_refused(run_dir: Path) -> None:
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match=r"--resume .* --overwrite"):
        train(tiny_config(run_dir, max_steps=1))


def test_overwrite_replaces_a_run_but_keeps_other_files(run_dir: Path) -> None:
    train(tiny_config(run_dir, max_steps=2))
    (run_dir / "notes.txt").write_text("mine")
    train(tiny_config(run_dir, max_steps=1), overwrite=True)
    assert load_state(run_dir)["step"] == 1
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_resume_refuses_to_change_what_the_model_is(run_dir: Path) -> None:
    train(tiny_config(run_dir, max_steps=1))
    with pytest.raises(TrainingError, match="cannot change --arch"):
        train(tiny_config(run_dir, arch="mlp", max_steps=1), resume=True)


def test_resume_refuses_other_data(run_dir: Path, tmp_path: Path) -> None:
    from core.datasets import make_fake_dataset, write_idx

    data = make_fake_dataset(256, seed=5)
    write_idx(data.images, data.labels, tmp_path / "idx", "train")
    train(tiny_config(run_dir, dataset="mnist", data_dir=str(tmp_path / "idx"), max_steps=1))
    other = make_fake_dataset(256, seed=6)
    write_idx(other.images, other.labels, tmp_path / "idx", "train")
    with pytest.raises(TrainingError, match="fingerprint"):
        train(tiny_config(run_dir, dataset="mnist", data_dir=str(tmp_path / "idx")), resume=True)


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_writes_a_checkpoint_and_says_how_to_resume(
    run_dir: Path, signal_number: int
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "training.cli", *tiny_cli_args(run_dir, "--epochs", "1000")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    _wait_for(run_dir / "metrics.jsonl", process)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"gan-train --out {run_dir} --resume" in stderr
    assert "Traceback" not in stderr
    state = load_state(run_dir)
    assert state["step"] >= 1 and state["batch_in_epoch"] >= 1
