"""The GAN objectives, on discriminator logits.

D(x) = sigmoid(logit) for the paper's value function; every log is taken through softplus,
so no loss ever evaluates log(0) however confident the discriminator gets. The hinge loss
(Lim & Ye 2017; Miyato et al. 2018) reads the logit as a margin instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "non-saturating"
) -> torch.Tensor:
    """hinge: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] on logits; otherwise
    -[log D(x) + log(1 - D(G(z)))]: D maximizes the paper's value function."""
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """minimax: minimize log(1 - D(G(z))) (saturates when D wins);
    non-saturating: minimize -log D(G(z)), the paper's practical advice;
    hinge: minimize -D(G(z)) (the logit)."""
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)
    if kind == "non-saturating":
        return F.softplus(-fake_logits).mean()  # -log sigmoid(l) = softplus(-l)
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")
