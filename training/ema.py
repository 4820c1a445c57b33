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
