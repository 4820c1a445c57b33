"""Shared builders for the training tests: tiny models on the fake data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from training.config import TrainConfig


def tiny_config(out: Path, **overrides: object) -> TrainConfig:
    """A dcgan small enough that an epoch over the 2048 fake images takes about a second."""
    values: dict[str, object] = {
        "out": str(out),
        "dataset": "fake",
        "arch": "dcgan",
        "g_width": 4,
        "d_width": 4,
        "latent_dim": 8,
        "batch_size": 64,
        "epochs": 1,
        "log_every": 8,
        "checkpoint_every": 1000,
        "sample_count": 16,
        "seed": 3,
        "threads": 1,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def load_state(run: Path, name: str = "last.pt") -> dict[str, object]:
    state: dict[str, object] = torch.load(run / "checkpoints" / name, weights_only=False)
    return state


def tiny_cli_args(out: Path, *extra: str) -> list[str]:
    """The same tiny run as `tiny_config`, as gan-train flags."""
    return [
        "--out",
        str(out),
        "--dataset",
        "fake",
        "--g-width",
        "4",
        "--d-width",
        "4",
        "--latent-dim",
        "8",
        "--batch-size",
        "64",
        "--log-every",
        "1",
        "--threads",
        "1",
        *extra,
    ]


def assert_same_tensors(left: object, right: object, where: str = "") -> None:
    """Recursively equal, bit for bit: state dicts, optimizer states, nested lists."""
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor)
        assert torch.equal(left, right), f"tensors differ at {where}"
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), where
        for key in left:
            assert_same_tensors(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list | tuple):
        assert isinstance(right, list | tuple) and len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same_tensors(a, b, f"{where}[{index}]")
    else:
        assert left == right, f"{where}: {left!r} != {right!r}"


TRAINED_STATE = (
    "generator",
    "discriminator",
    "generator_ema",
    "opt_generator",
    "opt_discriminator",
    "epoch",
    "step",
    "batch_in_epoch",
)


# -- checkpoints as gan-train wrote them before the recipe levers existed --

# Options of `config` the levers and folder datasets added, and the model spec's fields.
LEVER_CONFIG_KEYS = (
    "g_lr",
    "d_lr",
    "g_cond",
    "upsample",
    "spectral_norm",
    "diffaugment",
    "standing_stats",
    "image_size",
    "channels",
    "skip_bad_files",
)
LEVER_SPEC_KEYS = ("g_cond", "upsample", "spectral_norm")


def saved_before_the_levers(state: dict[str, Any], *, spec: bool = True) -> dict[str, Any]:
    """`state` (a loaded checkpoint) with the lever options removed, in place; `spec` also
    strips the model spec's lever fields."""
    for key in LEVER_CONFIG_KEYS:
        del state["config"][key]
    if spec:
        for key in LEVER_SPEC_KEYS:
            del state["model_spec"][key]
    return state
