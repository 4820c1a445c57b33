"""Checkpoints: atomic writes, RNG state capture, rotation of per-epoch files.

A checkpoint is one ``torch.save`` dict holding G, D, the EMA generator, both optimizer
states, the epoch/step counters, every RNG state, the resolved config and the data set
fingerprint: enough to continue a run bit for bit.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.files import sha256_file

__all__ = ["atomic_save", "capture_rng", "load", "restore_rng", "rotate", "sha256_file"]

CHECKPOINT_FORMAT = 1


def atomic_save(
    payload: dict[str, Any],
    path: Path,
    save: Callable[[dict[str, Any], Any], None] = torch.save,
) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it.

    An interrupted write leaves the previous `path` untouched and no partial file behind.
    `save` is injectable so tests can make a write fail halfway.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # weights_only=False: the payload holds RNG states and plain config dicts we wrote.
    payload: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=False)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a ganserve checkpoint (format {payload.get('format')})")
    return payload


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rotate(directory: Path, keep: int) -> None:
    """Keep only the newest `keep` ``epoch-XXXX.pt`` files."""
    epochs = sorted(directory.glob("epoch-*.pt"))
    for old in epochs[: max(0, len(epochs) - keep)]:
        old.unlink(missing_ok=True)


class RunSaver:
    """Writes a run's checkpoints: last.pt always, epoch-XXXX.pt at epoch ends (the newest
    `keep` kept). Only the main process writes; the others return at once."""

    def __init__(
        self, directory: Path, run_fields: dict[str, Any], keep: int, is_main: bool
    ) -> None:
        self.directory = directory
        self.run_fields = run_fields  # the same in every checkpoint of the run
        self.keep = keep
        self.is_main = is_main

    def save(self, state: dict[str, Any], epoch: int | None = None) -> None:
        if not self.is_main:
            return
        state |= self.run_fields | {"format": CHECKPOINT_FORMAT, "saved_at": time.time()}
        atomic_save(state, self.directory / "last.pt")
        if epoch is not None:
            atomic_save(state, self.directory / f"epoch-{epoch:04d}.pt")
            rotate(self.directory, self.keep)
