"""An exponential moving average of the generator's weights, used for samples and export."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(generator: nn.Module, decay: float | None) -> nn.Module | None:
    """A frozen copy of `generator`, or None when `decay` is 0 (EMA off)."""
    if not decay:
        return None
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module | None, generator: nn.Module, decay: float, step: int) -> None:
    """Move `ema` towards `generator`. BatchNorm running statistics are copied, not
    averaged: they must describe the activations of the weights they sit beside. A short
    warm-up (decay (1+t)/(10+t) until it reaches `decay`) keeps early sample grids useful."""
    if ema is None:
        return
    decay = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(ema.parameters()), list(generator.parameters()), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), generator.buffers(), strict=True):
        ema_buffer.copy_(buffer)


@torch.no_grad()
def standing_statistics(
    generator: nn.Module,
    latent_dim: int,
    num_classes: int,
    conditional: bool,
    passes: int,
    batch: int,
    seed: int = 0,
) -> nn.Module:
    """A copy of `generator` whose BatchNorm running statistics are re-estimated from
    `passes` train-mode forward passes ("standing statistics", Brock et al. 2019).

    The EMA generator's weights are an average, but its BatchNorm statistics were copied
    from the raw G and describe the raw G's activations; in eval mode (samples, export)
    that mismatch shows. The copy is estimated with its own random stream, so taking it
    changes neither the training RNG nor `generator`. Without BatchNorm: a plain copy.
    """
    standing = copy.deepcopy(generator)
    norms = [m for m in standing.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or passes <= 0:
        return standing.eval()
    device = next(standing.parameters()).device
    rng = torch.Generator(device="cpu").manual_seed(seed)
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every pass
    standing.train()
    for _ in range(passes):
        z = torch.randn(batch, latent_dim, generator=rng).to(device)  # (B, latent)
        label = torch.randint(0, num_classes, (batch,), generator=rng).to(device)
        standing(z, label if conditional else None)
    for norm in norms:
        norm.momentum = 0.1
    return standing.eval()
