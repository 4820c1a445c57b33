"""The seed scheme: from one request seed to per-image seeds, latent vectors and labels.

Image i of a request with seed s gets the image seed `derive(s, i)`, with
`derive(s, 0) == s`; for i > 0 it is SplitMix64(SplitMix64(s) + i) >> 1, so it fits
0 .. 2**63 - 1 like any request seed. Everything random about an image comes from its image
seed alone, through two independent NumPy streams: Philox-4x64 generators keyed by
(image seed, stream id), the key being `image_seed + (stream << 64)`:

- stream 0: the latent vector, `standard_normal(latent_dim, dtype=float32)`;
- stream 1: the label, `integers(num_classes)`, used only when the request gives no label.

So `n=1&seed=<image seed>&label=<its label>` rebuilds the same `z` and label whatever else
was in the original request; with a batch-independent generator (the ONNX contract: no
training-mode BatchNorm) the image is the same bit for bit on the CPU provider. Philox is a
counter-based generator: distinct keys give independent streams, and keying it directly
costs a fraction of hashing a SeedSequence per image. The same NumPy version gives the same
numbers (NumPy may change how `Generator` draws normals between feature releases, NEP 19).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_SEED = 2**63 - 1

_LATENT_STREAM = 0
_LABEL_STREAM = 1
_MASK64 = 2**64 - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(x: int) -> int:
    """The SplitMix64 step: a bijective 64-bit mixer."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def random_seed() -> int:
    """A fresh request seed in 0 .. 2**63 - 1."""
    return secrets.randbits(63)


def derive(seed: int, index: int) -> int:
    """The seed of image `index` of a request seeded `seed`; image 0 keeps the request seed."""
    if index == 0:
        return seed
    return _splitmix64((_splitmix64(seed) + index) & _MASK64) >> 1


def _stream(image_seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=image_seed + (stream << 64)))


def latent(image_seed: int, latent_dim: int) -> npt.NDArray[np.float32]:
    """The latent vector `z` of one image, shape (latent_dim,)."""
    return _stream(image_seed, _LATENT_STREAM).standard_normal(latent_dim, dtype=np.float32)


def random_label(image_seed: int, num_classes: int) -> int:
    """The label of one image when the request does not fix it."""
    return int(_stream(image_seed, _LABEL_STREAM).integers(num_classes))


@dataclass(frozen=True)
class Inputs:
    """The generator inputs of one request, one row per image."""

    seeds: list[int]
    z: npt.NDArray[np.float32]  # (n, latent_dim)
    labels: npt.NDArray[np.int64] | None  # (n,), None for unconditional models


def make_inputs(
    seed: int, n: int, latent_dim: int, num_classes: int | None, label: int | None
) -> Inputs:
    """Build `z` (and labels when `num_classes` is given) for images 0 .. n-1 of a request."""
    seeds = [derive(seed, i) for i in range(n)]
    z = np.empty((n, latent_dim), dtype=np.float32)
    for i, image_seed in enumerate(seeds):
        z[i] = latent(image_seed, latent_dim)
    labels: npt.NDArray[np.int64] | None = None
    if num_classes is not None:
        if label is not None:
            labels = np.full(n, label, dtype=np.int64)
        else:
            labels = np.array([random_label(s, num_classes) for s in seeds], dtype=np.int64)
    return Inputs(seeds=seeds, z=z, labels=labels)
