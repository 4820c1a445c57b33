"""Restarting runs: damaged checkpoints, resuming with the same options, runs
killed before their first checkpoint, stale temporaries, and SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.training.helpers import (
    TRAINED_STATE,
    assert_same_tensors,
    load_state,
    saved_before_the_levers,
    tiny_cli_args,
)
from training import checkpoint
from training.cli import train_main

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        train_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_resume_with_the_same_options_as_saved_is_accepted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--arch", "dcgan", "--max-steps", "2")) == 0
    assert train_main(tiny_cli_args(run, "--arch", "dcgan", "--max-steps", "3", "--resume")) == 0
    assert load_state(run)["step"] == 3


def test_resume_names_each_option_it_cannot_change(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--max-steps", "1")) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, tiny_cli_args(run, "--resume", "--latent-dim", "9"))
    assert "cannot change --latent-dim (saved 8, given 9)" in err


def test_a_corrupt_last_checkpoint_names_the_newest_intact_one_which_resume_from_continues(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--epochs", "2", "--keep", "2")) == 0
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    capsys.readouterr()
    err = _one_line_error(capsys, ["--out", str(run), "--resume", "--epochs", "3"])
    intact = run / "checkpoints" / "epoch-0002.pt"
    assert f"checkpoint {last} is unreadable" in err
    assert f"--resume-from {intact}" in err
    assert train_main(["--out", str(run), "--resume-from", str(intact), "--epochs", "3"]) == 0
    state = load_state(run)
    assert state["epoch"] == 3 and state["step"] == 96


def test_a_run_killed_before_its_first_checkpoint_restarts_and_keeps_user_files(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    (run / "config.json").write_text("{}")  # what a run writes before its first checkpoint
    (run / "metrics.jsonl").write_text('{"kind": "step", "step": 5}\n')
    assert train_main(tiny_cli_args(run, "--max-steps", "2", "--resume")) == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert load_state(run)["step"] == 2
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_a_directory_with_only_a_killed_runs_files_is_started_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / ".last.pt.4242.tmp").write_bytes(b"half a checkpoint")
    assert train_main(tiny_cli_args(run, "--max-steps", "1")) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]


def test_stale_temporary_files_are_removed_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--max-steps", "1")) == 0
    stale = run / "checkpoints" / ".last.pt.999999.tmp"
    stale.write_bytes(b"x" * 1000)
    assert train_main(tiny_cli_args(run, "--max-steps", "2", "--resume")) == 0
    assert not stale.exists()


def _last_logged_step(metrics: Path) -> int:
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue  # a line being written
    return 0


def _temporaries(run: Path) -> list[Path]:
    directory = run / "checkpoints"
    return list(directory.glob(".*.tmp")) if directory.is_dir() else []


def test_sigkill_at_random_moments_never_breaks_a_checkpoint_and_resume_is_exact(
    tmp_path: Path,
) -> None:
    """Ten SIGKILLs of a real gan-train, half of them while a checkpoint is being written
    (one is written every step), each followed by --resume; then the finished run must
    equal an uninterrupted one bit for bit."""
    seed = 20261127
    rng = random.Random(seed)
    killed = tmp_path / "killed"
    # 2 epochs × 32 steps; last.pt every step, both epoch files kept
    flags = ["--epochs", "2", "--checkpoint-every", "1", "--keep", "2"]
    command = [sys.executable, "-m", "training.cli", *tiny_cli_args(killed, *flags), "--resume"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    kills_during_writes = 0
    for kill in range(10):
        start_step = _last_logged_step(killed / "metrics.jsonl")
        target = start_step + rng.randint(1, 4)
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        in_write = kill % 2 == 1
        while True:  # wait for the kill moment: a step reached, or a write in flight
            assert process.poll() is None, f"seed {seed}: gan-train exited before kill {kill}"
            assert time.monotonic() < deadline, f"seed {seed}: no progress"
            if _last_logged_step(killed / "metrics.jsonl") >= target and (
                not in_write or _temporaries(killed)
            ):
                break
            if not in_write:
                time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills_during_writes += bool(_temporaries(killed))
        for path in sorted((killed / "checkpoints").glob("*.pt")):
            checkpoint.load(path)  # raises if any checkpoint is unloadable
    torch.set_num_threads(1)
    assert train_main(command[3:]) == 0  # the last resume runs to the end, in-process
    assert not _temporaries(killed)
    assert kills_during_writes >= 1, "no kill landed inside a checkpoint write"

    straight = tmp_path / "straight"
    assert train_main(tiny_cli_args(straight, *flags)) == 0
    a, b = load_state(straight), load_state(killed)
    for key in TRAINED_STATE:
        assert_same_tensors(a[key], b[key], f"{key} (seed {seed})")
    assert a["step"] == 64
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == [
        "epoch-0001.pt",
        "epoch-0002.pt",
        "last.pt",
    ]


def test_a_checkpoint_saved_before_the_levers_existed_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--conditional", "--max-steps", "2")) == 0
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=False)
    saved_before_the_levers(state, spec=False)
    torch.save(state, last)
    assert train_main(["--out", str(run), "--resume", "--max-steps", "4"]) == 0
    assert load_state(run)["step"] == 4
