"""DiffAugment (Zhao et al. 2020): the same random, differentiable augmentation applied
to every image the discriminator sees, real and generated, so D cannot simply memorise
the training set and G still gets gradients through the augmentation.

Policies: ``translation`` (shift by up to 1/8 of the side, zero padding) and ``cutout``
(zero a square of half the side at a random place), as in the paper's reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by its own random offset; pixels shifted in are 0."""
    batch, _, height, width = x.shape  # (B, C, H, W)
    shift_h, shift_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, (batch, 1, 1), device=x.device)
    dx = torch.randint(-shift_w, shift_w + 1, (batch, 1, 1), device=x.device)
    index_b, index_y, index_x = torch.meshgrid(
        torch.arange(batch, device=x.device),
        torch.arange(height, device=x.device),
        torch.arange(width, device=x.device),
        indexing="ij",
    )  # each (B, H, W)
    # One pixel of zero padding; every out-of-range source clamps onto it.
    index_y = torch.clamp(index_y + dy + 1, 0, height + 1)
    index_x = torch.clamp(index_x + dx + 1, 0, width + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (B, H+2, W+2, C)
    return padded[index_b, index_y, index_x].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of side `ratio` × the image side per image."""
    batch, _, height, width = x.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - cut_h % 2), (batch, 1, 1), device=x.device)
    left = torch.randint(0, width + (1 - cut_w % 2), (batch, 1, 1), device=x.device)
    index_b, index_y, index_x = torch.meshgrid(
        torch.arange(batch, device=x.device),
        torch.arange(cut_h, device=x.device),
        torch.arange(cut_w, device=x.device),
        indexing="ij",
    )
    index_y = torch.clamp(index_y + top - cut_h // 2, 0, height - 1)
    index_x = torch.clamp(index_x + left - cut_w // 2, 0, width - 1)
    mask = torch.ones(batch, height, width, dtype=x.dtype, device=x.device)
    mask[index_b, index_y, index_x] = 0
    return x * mask.unsqueeze(1)


POLICIES = {"translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policies: tuple[str, ...]) -> torch.Tensor:
    """Apply each named policy in order; an empty tuple returns `x` unchanged."""
    for name in policies:
        x = POLICIES[name](x)
    return x
