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

LOSSES = ("non-saturating", "minimax")
DEVICES = ("auto", "cpu", "cuda")

# Per-architecture defaults (see README "Training defaults"): DCGAN follows Radford et al.
# 2016 (Adam 2e-4, betas 0.5/0.999) plus an EMA generator; the MLP follows the 2014 paper's
# sizes (minibatch 100) with the same Adam settings, which train it far more reliably on
# Fashion-MNIST than the paper's SGD with momentum, and no EMA.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "dcgan": {"batch_size": 128, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "ema_decay": 0.999,
              "g_width": 32, "d_width": 32},
    "mlp": {"batch_size": 100, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "ema_decay": 0.0,
            "g_width": 256, "d_width": 256},
}


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

    def resolve(self) -> TrainConfig:
        """A copy with every architecture default filled in."""
        filled = dataclasses.replace(self)
        for key, value in ARCH_DEFAULTS[self.arch].items():
            if getattr(filled, key) is None:
                setattr(filled, key, value)
        return filled

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """sha256 prefix of the options that shape the model and its training (not paths)."""
        shaping = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# Options that change where and how long a run goes, not what it learns.
_NOT_HASHED = frozenset(
    {"out", "data_dir", "epochs", "max_steps", "device", "log_every", "checkpoint_every",
     "keep", "threads"}
)

# Options a resumed run may change; everything else comes from the checkpoint.
RESUMABLE_OVERRIDES = frozenset(
    {"epochs", "max_steps", "device", "log_every", "checkpoint_every", "keep", "threads",
     "data_dir"}
)
