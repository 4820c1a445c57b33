"""The resolved training configuration: one dataclass, stored in every checkpoint and as
``RUN/config.json``.

Architecture-dependent defaults are filled in by `resolve`, so what is stored is always
complete and a run can be reproduced from it alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

ARCHS = ("mlp", "dcgan")  # the model families of training/models.py
LOSSES = ("non-saturating", "minimax", "hinge")
DEVICES = ("auto", "cpu", "cuda")
G_CONDITIONINGS = ("concat", "cbn")
UPSAMPLINGS = ("convT", "nearest")
AUGMENTATIONS = ("translation", "cutout")
PRECISIONS = ("fp32", "bf16")

# Per-architecture defaults (see README "Training defaults"): DCGAN follows Radford et al.
# 2016 (Adam 2e-4, betas 0.5/0.999) plus an EMA generator; the MLP follows the 2014 paper's
# sizes (minibatch 100) with the same Adam settings, which train it far more reliably on
# Fashion-MNIST than the paper's SGD with momentum, and no EMA. The DCGAN's EMA generator
# is sampled with standing BatchNorm statistics (200 passes): measured in
# docs/quality-ablation.md, it lowered FCD 256 → 229 at the same weights.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "dcgan": {
        "batch_size": 128,
        "lr": 2e-4,
        "beta1": 0.5,
        "beta2": 0.999,
        "ema_decay": 0.999,
        "g_width": 32,
        "d_width": 32,
        "standing_stats": 200,
    },
    "mlp": {
        "batch_size": 100,
        "lr": 2e-4,
        "beta1": 0.5,
        "beta2": 0.999,
        "ema_decay": 0.0,
        "g_width": 256,
        "d_width": 256,
        "standing_stats": 0,
    },
}


class TrainingError(Exception):
    """A user-facing problem with the options or the run directory. One line."""


@dataclass
class TrainConfig:
    out: str = "runs/gan"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    arch: str = "dcgan"
    conditional: bool = False
    latent_dim: int = 100
    g_width: int | None = None
    d_width: int | None = None
    loss: str = "non-saturating"
    d_steps: int = 1
    epochs: int = 20
    max_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    ema_decay: float | None = None
    seed: int = 0
    device: str = "auto"
    log_every: int = 100
    checkpoint_every: int = 1000
    keep: int = 3
    sample_count: int = 64
    threads: int | None = None
    # Recipe levers. A saved config without one of these keys predates them and
    # means the old behaviour (see _LEVERS), whatever today's default is.
    g_lr: float | None = None  # None: --lr
    d_lr: float | None = None  # None: --lr
    g_cond: str = "concat"
    upsample: str = "convT"
    spectral_norm: bool = False
    diffaugment: str = ""  # comma-separated AUGMENTATIONS, "" = off
    standing_stats: int | None = None  # train-mode passes re-estimating BN statistics; 0 off
    # Speed levers: bf16 autocast (channels-last convolutions on the CPU), and the G step
    # scoring the D step's fake batch again instead of generating a new one.
    precision: str = "fp32"
    reuse_fake: bool = False
    # Image folders (--dataset folder); None: from the files (28 for the idx data sets).
    image_size: int | None = None
    channels: int | None = None
    skip_bad_files: bool = False

    def resolve(self) -> TrainConfig:
        """A copy with every architecture default filled in."""
        filled = dataclasses.replace(self)
        for key, value in ARCH_DEFAULTS[self.arch].items():
            if getattr(filled, key) is None:
                setattr(filled, key, value)
        return filled

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def generator_lr(self) -> float:
        assert self.lr is not None, "resolve() first"
        return self.g_lr if self.g_lr is not None else self.lr

    @property
    def discriminator_lr(self) -> float:
        assert self.lr is not None, "resolve() first"
        return self.d_lr if self.d_lr is not None else self.lr

    @property
    def augmentations(self) -> tuple[str, ...]:
        return tuple(name for name in self.diffaugment.split(",") if name)

    def hash(self) -> str:
        """sha256 prefix of the options that shape the model and its training (not paths).
        Levers left at their old behaviour are not hashed, so older runs keep their hash."""
        shaping = {
            k: v
            for k, v in self.to_dict().items()
            if k not in _NOT_HASHED and not (k in _LEVERS and v == _LEVERS[k])
        }
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**(_LEVERS | {k: v for k, v in values.items() if k in known}))


# Options that change where and how long a run goes, not what it learns.
_NOT_HASHED = frozenset(
    {
        "out",
        "data_dir",
        "epochs",
        "max_steps",
        "device",
        "log_every",
        "checkpoint_every",
        "keep",
        "threads",
        "skip_bad_files",
    }
)

# The options added after the first shipped runs, with the values that mean "as before":
# `from_dict` fills them into a saved config that lacks them.
_LEVERS: dict[str, Any] = {
    "g_lr": None,
    "d_lr": None,
    "g_cond": "concat",
    "upsample": "convT",
    "spectral_norm": False,
    "diffaugment": "",
    "standing_stats": 0,
    "precision": "fp32",
    "reuse_fake": False,
    "image_size": None,
    "channels": None,
    "skip_bad_files": False,
}

# Options a resumed run may change; everything else comes from the checkpoint.
RESUMABLE_OVERRIDES = frozenset(
    {
        "epochs",
        "max_steps",
        "device",
        "log_every",
        "checkpoint_every",
        "keep",
        "threads",
        "data_dir",
        "skip_bad_files",
        "out",
    }
)
