"""Shared builders for the training tests: tiny models on the fake data set."""

from __future__ import annotations

from pathlib import Path

import torch

from training.config import TrainConfig


def tiny_config(out: Path, **overrides: object) -> TrainConfig:
    """A dcgan small enough that an epoch over the 2048 fake images takes about a second."""
    values: dict[str, object] = {
        "out": str(out), "dataset": "fake", "arch": "dcgan", "g_width": 4, "d_width": 4,
        "latent_dim": 8, "batch_size": 64, "epochs": 1, "log_every": 8,
        "checkpoint_every": 1000, "sample_count": 16, "seed": 3, "threads": 1,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def load_state(run: Path, name: str = "last.pt") -> dict[str, object]:
    state: dict[str, object] = torch.load(run / "checkpoints" / name, weights_only=False)
    return state


def tiny_cli_args(out: Path, *extra: str) -> list[str]:
    """The same tiny run as `tiny_config`, as gan-train flags."""
    return ["--out", str(out), "--dataset", "fake", "--g-width", "4", "--d-width", "4",
            "--latent-dim", "8", "--batch-size", "64", "--log-every", "1", "--threads", "1",
            *extra]
