"""The minimax game's objectives, on discriminator logits.

D(x) = sigmoid(logit); every log is taken through softplus, so no loss ever evaluates
log(0) however confident the discriminator gets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GENERATOR_LOSSES = ("non-saturating", "minimax")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-[log D(x) + log(1 - D(G(z)))]: D maximizes the paper's value function."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """minimax: minimize log(1 - D(G(z))) (saturates when D wins);
    non-saturating: minimize -log D(G(z)), the paper's practical advice."""
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)
    if kind == "non-saturating":
        return F.softplus(-fake_logits).mean()  # -log sigmoid(l) = softplus(-l)
    raise ValueError(f"unknown loss {kind!r}")
