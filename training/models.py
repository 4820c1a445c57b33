"""Generators and discriminators: the 2014 paper's MLPs and a DCGAN, each optionally
class-conditional.

Generators map ``z (B, latent)`` (and ``label (B,)``) to ``image (B, C, H, W)`` in [-1, 1].
Discriminators map an image (and label) to one *logit* per image: the probability D(x) is
``sigmoid(logit)``, and losses are computed on logits so they never take log(0).
Conditional discriminators use the projection trick (Miyato & Koyama 2018):
``logit = psi(h) + <embed(y), h>`` for features ``h``. Conditional generators either
concatenate a label embedding to z or use class-conditional BatchNorm (per-class gain and
bias, ``g_cond="cbn"``). The DCGAN grows one up/down block per doubling of the image size.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from training.config import ARCHS


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
    # Added later; the defaults are what older checkpoints' specs meant.
    g_cond: str = "concat"  # "concat": embedding joined to z; "cbn": conditional BatchNorm
    upsample: str = "convT"  # "convT": transposed 4×4 convs; "nearest": upsample + 3×3 conv
    spectral_norm: bool = False  # on every discriminator layer

    @property
    def conditional_bn(self) -> bool:
        return self.conditional and self.g_cond == "cbn"


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
            nn.Linear(in_features, width),
            nn.ReLU(),
            nn.Linear(width, 2 * width),
            nn.ReLU(),
            nn.Linear(2 * width, math.prod(spec.image_shape)),
            nn.Tanh(),
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
            nn.Dropout(dropout),
            _Maxout(math.prod(spec.image_shape), 2 * width, pieces),
            nn.Dropout(dropout),
            _Maxout(2 * width, width, pieces),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(width, 1)
        if spec.conditional:
            self.project = nn.Embedding(spec.num_classes, width)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x.flatten(1))  # (B, w)
        return _project(self, h, label)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine part, then a per-class gain and bias:
    ``(1 + gain[y]) * norm(x) + bias[y]`` (gain starts near 0, so the scale near 1)."""

    def __init__(self, features: int, num_classes: int, dims: int) -> None:
        super().__init__()
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.norm = norm(features, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.bias = nn.Embedding(num_classes, features)
        self.dims = dims

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], -1) + ((1, 1) if self.dims == 2 else ())  # (B, F[, 1, 1])
        gain = 1.0 + self.gain(label).view(shape)
        return gain * self.norm(x) + self.bias(label).view(shape)


class _LabelledSequential(nn.Sequential):
    """A Sequential whose ConditionalBatchNorm layers also receive the label. Same
    parameter names as nn.Sequential, so checkpoints of the plain layout still load."""

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ConditionalBatchNorm):
                assert label is not None, "conditional BatchNorm needs a label"
                x = layer(x, label)
            else:
                x = layer(x)
        return x


def dcgan_blocks(size: int) -> int:
    """Up (G) or down (D) blocks for an image side: 28 → 7 → 2 blocks, 32 → 8 → 2,
    64 → 8 → 3; one more per doubling, so the smallest map stays at 4..8 pixels."""
    blocks = 2
    while size % (2 ** (blocks + 1)) == 0 and size // 2**blocks > 8:
        blocks += 1
    return blocks


class DCGANGenerator(nn.Module):
    """Linear → (2^(n-1)·w, H/2^n, W/2^n) → n upsampling blocks halving the channels,
    BN + ReLU, the last to C channels with tanh. 28×28: 2w×7×7 → w×14×14 → C×28×28."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        channels, height, width = spec.image_shape
        blocks = dcgan_blocks(height)
        if height != width or height % 2**blocks:
            raise ValueError(
                f"dcgan needs square images with a side divisible by 4, got {height}×{width}"
            )
        w = spec.g_width
        widths = [w * 2 ** (blocks - 1 - i) for i in range(blocks)] + [channels]
        self.base = (widths[0], height // 2**blocks, width // 2**blocks)
        in_features = spec.latent_dim
        if spec.conditional and not spec.conditional_bn:
            self.embed = nn.Embedding(spec.num_classes, spec.label_embed_dim)
            in_features += spec.label_embed_dim
        self.project = _LabelledSequential(
            nn.Linear(in_features, math.prod(self.base), bias=False),
            self._norm(math.prod(self.base), dims=1),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for index, (wide, narrow) in enumerate(itertools.pairwise(widths)):
            last = index == blocks - 1
            layers += self._up(wide, narrow, bias=last)
            layers += [nn.Tanh()] if last else [self._norm(narrow, dims=2), nn.ReLU()]
        self.upsample = _LabelledSequential(*layers)
        init_dcgan_weights(self)

    def _norm(self, features: int, dims: int) -> nn.Module:
        if self.spec.conditional_bn:
            return ConditionalBatchNorm(features, self.spec.num_classes, dims)
        return nn.BatchNorm1d(features) if dims == 1 else nn.BatchNorm2d(features)

    def _up(self, wide: int, narrow: int, bias: bool) -> list[nn.Module]:
        """Double H and W: a transposed 4×4 conv, or nearest upsampling then a 3×3 conv
        (which avoids the transposed conv's checkerboard pattern)."""
        if self.spec.upsample == "nearest":
            return [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(wide, narrow, 3, padding=1, bias=bias),
            ]
        return [nn.ConvTranspose2d(wide, narrow, 4, stride=2, padding=1, bias=bias)]

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.conditional:
            assert label is not None, "conditional generator needs a label"
        if self.spec.conditional and not self.spec.conditional_bn:
            z = torch.cat([z, self.embed(label)], dim=1)  # (B, latent + embed)
        h = self.project(z, label).view(z.shape[0], *self.base)  # (B, 2^(n-1)w, H/2^n, W/2^n)
        return self.upsample(h, label)  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """Strided 4×4 convs (C → w → 2w …, one per up block of G, each halving H and W),
    LeakyReLU 0.2, a linear logit.

    No BatchNorm: real and fake images go through D in one concatenated batch, and
    without batch statistics each image's logit depends on that image alone.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        channels, height, width = spec.image_shape
        blocks = dcgan_blocks(height)
        w = spec.d_width
        widths = [channels] + [w * 2**i for i in range(blocks)]
        layers: list[nn.Module] = []
        for wide_in, wide_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(wide_in, wide_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        feature_dim = widths[-1] * (height // 2**blocks) * (width // 2**blocks)
        self.head = nn.Linear(feature_dim, 1)
        if spec.conditional:
            self.project = nn.Embedding(spec.num_classes, feature_dim)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, 2^(n-1)w · H/2^n · W/2^n)
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
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def build_models(spec: ModelSpec) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair for `spec`."""
    generator: nn.Module
    discriminator: nn.Module
    if spec.arch == "mlp":
        generator, discriminator = MLPGenerator(spec), MLPDiscriminator(spec)
    elif spec.arch == "dcgan":
        generator, discriminator = DCGANGenerator(spec), DCGANDiscriminator(spec)
    else:
        raise ValueError(f"unknown arch {spec.arch!r}; choose one of {', '.join(ARCHS)}")
    if spec.spectral_norm:
        add_spectral_norm(discriminator)
    return generator, discriminator


def add_spectral_norm(discriminator: nn.Module) -> None:
    """Spectral normalisation (Miyato et al. 2018) on every weight layer of D, the
    projection embedding included: each layer's largest singular value is kept at 1."""
    for module in list(discriminator.modules()):
        if isinstance(module, nn.Conv2d | nn.Linear | nn.Embedding):
            spectral_norm(module)
