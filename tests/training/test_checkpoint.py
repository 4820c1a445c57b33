"""Atomic checkpoint writes, RNG capture and rotation."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training import checkpoint

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


class _Crash(RuntimeError):
    pass


def _half_then_crash(payload: dict[str, Any], handle: Any) -> None:
    handle.write(b"partial checkpoint bytes")  # some bytes reach the disk, then a failure
    raise _Crash("disk full")


def test_a_failed_write_keeps_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.pt"
    checkpoint.atomic_save({"format": checkpoint.CHECKPOINT_FORMAT, "step": 1}, path)
    before = path.read_bytes()
    with pytest.raises(_Crash):
        checkpoint.atomic_save(
            {"format": checkpoint.CHECKPOINT_FORMAT, "step": 2}, path, save=_half_then_crash
        )
    assert path.read_bytes() == before
    assert checkpoint.load(path)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left


def test_a_failed_first_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    with pytest.raises(_Crash):
        checkpoint.atomic_save({}, path, save=_half_then_crash)
    assert list(tmp_path.iterdir()) == []


def test_rng_states_round_trip() -> None:
    state = checkpoint.capture_rng()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.restore_rng(state)
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_rotation_keeps_the_newest_epochs(tmp_path: Path) -> None:
    for epoch in range(1, 6):
        (tmp_path / f"epoch-{epoch:04d}.pt").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    checkpoint.rotate(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch-0004.pt",
        "epoch-0005.pt",
        "last.pt",
    ]


def test_loading_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": 1}, path)
    with pytest.raises(ValueError, match="not a ganserve checkpoint"):
        checkpoint.load(path)
