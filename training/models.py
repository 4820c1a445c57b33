"""Generators and discriminators: the 2014 paper's MLPs and a DCGAN, each optionally
class-conditional.

Generators map ``z (B, latent)`` (and ``label (B,)``) to ``image (B, C, H, W)`` in [-1, 1].
Discriminators map an image (and label) to one *logit* per image: the probability D(x) is
``sigmoid(logit)``, and losses are computed on logits so they never take log(0).
Conditional discriminators use the projection trick (Miyato & Koyama 2018):
``logit = psi(h) + <embed(y), h>`` for features ``h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

ARCHS = ("mlp", "dcgan")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a G/D pair; stored in every checkpoint via the config."""

    arch: str
    latent_dim: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    conditional: bool
    g_width: int  # MLP: first hidden layer width; DCGAN: channels of the last hidden map
    d_width: int
    label_embed_dim: int = 50


class _Maxout(nn.Module):
    """Maxout unit (Goodfellow et al. 2013), the 2014 paper's discriminator activation."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)  # (B, out * pieces)
        return y.view(x.shape[0], -1, self.pieces).amax(dim=2)  # (B, out)


class MLPGenerator(nn.Module):
    """latent → w → 2w → C·H·W with ReLU hidden units and a tanh output (w = 256)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        width = spec.g_width
        in_features = spec.latent_dim
        if spec.conditional:
            self.embed = nn.Embedding(spec.num_classes, spec.label_embed_dim)
            in_features += spec.label_embed_dim
        self.net = nn.Sequential(
            nn.Linear(in_features, width), nn.ReLU(),
            nn.Linear(width, 2 * width), nn.ReLU(),
            nn.Linear(2 * width, math.prod(spec.image_shape)), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.conditional:
            assert label is not None, "conditional generator needs a label"
            z = torch.cat([z, self.embed(label)], dim=1)  # (B, latent + embed)
        return self.net(z).view(z.shape[0], *self.spec.image_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    """C·H·W → maxout 2w → maxout w → logit, with dropout as in the paper (w = 256)."""

    def __init__(self, spec: ModelSpec, pieces: int = 2, dropout: float = 0.3) -> None:
        super().__init__()
        self.spec = spec
        width = spec.d_width
        self.features = nn.Sequential(
            nn.Dropout(dropout), _Maxout(math.prod(spec.image_shape), 2 * width, pieces),
            nn.Dropout(dropout), _Maxout(2 * width, width, pieces),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(width, 1)
        if spec.conditional:
            self.project = nn.Embedding(spec.num_classes, width)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x.flatten(1))  # (B, w)
        return _project(self, h, label)


class DCGANGenerator(nn.Module):
    """Linear → (2w, 7, 7) → ConvT to (w, 14, 14) → ConvT to (C, 28, 28), BN + ReLU, tanh."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        channels, height, width = spec.image_shape
        if height % 4 or width % 4:
            raise ValueError(f"dcgan needs H and W divisible by 4, got {height}×{width}")
        self.base = (2 * spec.g_width, height // 4, width // 4)
        in_features = spec.latent_dim
        if spec.conditional:
            self.embed = nn.Embedding(spec.num_classes, spec.label_embed_dim)
            in_features += spec.label_embed_dim
        self.project = nn.Sequential(
            nn.Linear(in_features, math.prod(self.base), bias=False),
            nn.BatchNorm1d(math.prod(self.base)), nn.ReLU(),
        )
        w = spec.g_width
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, channels, 4, stride=2, padding=1), nn.Tanh(),
        )
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.conditional:
            assert label is not None, "conditional generator needs a label"
            z = torch.cat([z, self.embed(label)], dim=1)  # (B, latent + embed)
        h = self.project(z).view(z.shape[0], *self.base)  # (B, 2w, H/4, W/4)
        return self.upsample(h)  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """Strided convs (C → w → 2w, each halving H and W), LeakyReLU 0.2, a linear logit.

    No BatchNorm: real and fake images go through D in one concatenated batch, and
    without batch statistics each image's logit depends on that image alone.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        channels, height, width = spec.image_shape
        w = spec.d_width
        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        feature_dim = 2 * w * (height // 4) * (width // 4)
        self.head = nn.Linear(feature_dim, 1)
        if spec.conditional:
            self.project = nn.Embedding(spec.num_classes, feature_dim)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, 2w · H/4 · W/4)
        return _project(self, h, label)


def _project(
    module: MLPDiscriminator | DCGANDiscriminator, h: torch.Tensor, label: torch.Tensor | None
) -> torch.Tensor:
    """Unconditional logit psi(h), plus the projection <embed(y), h> when conditional."""
    logit = module.head(h).squeeze(1)  # (B,)
    if module.spec.conditional:
        assert label is not None, "conditional discriminator needs a label"
        logit = logit + (module.project(label) * h).sum(dim=1)
    return logit


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear/embedding weights N(0, 0.02), BN scale N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def build_models(spec: ModelSpec) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair for `spec`."""
    if spec.arch == "mlp":
        return MLPGenerator(spec), MLPDiscriminator(spec)
    if spec.arch == "dcgan":
        return DCGANGenerator(spec), DCGANDiscriminator(spec)
    raise ValueError(f"unknown arch {spec.arch!r}; choose one of {', '.join(ARCHS)}")
