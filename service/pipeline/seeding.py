"""The seed scheme: from one request seed to per-image seeds, latent vectors and labels.

Image i of a request with seed s gets the image seed `derive(s, i)`, with
`derive(s, 0) == s`; for i > 0 it is SplitMix64(SplitMix64(s) + i) >> 1, so it fits
0 .. 2**63 - 1 like any request seed. Everything random about an image comes from its image
seed alone, through two SplitMix64 streams (the k-th number of the stream keyed t is
`SplitMix64(t + k * 0x9E3779B97F4A7C15)`, the mixer applied to a Weyl sequence):

- the latent stream, keyed by the image seed: number k gives the uniform
  u_k = ((x_k >> 11) + 1) / 2**53 in (0, 1]; pairs (u_2j, u_2j+1) become two standard normals
  by the Box-Muller transform, computed in float64 and rounded to float32: z[2j], z[2j+1];
- the label stream, keyed by SplitMix64(image seed XOR 0xA5A5...), used only when the request
  fixes no label: label = (x_0 >> 11) * num_classes >> 53.

So `n=1&seed=<image seed>&label=<its label>` rebuilds the same `z` and label whatever else
was in the original request; with a batch-independent generator (the ONNX contract: no
training-mode BatchNorm) the image is the same bit for bit on the CPU provider. The scheme is
plain integer arithmetic plus log, sqrt, cos and sin in float64, vectorised over every image
of a run at once (a few microseconds per image); a different libm or SIMD path could change
a float64 result in its last bit, which rounding to float32 hides but for a rare value.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_SEED = 2**63 - 1

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LABEL_SALT = np.uint64(0xA5A5A5A5A5A5A5A5)
_MASK64 = 2**64 - 1
_TWO_PI = 2.0 * np.pi

Seeds = npt.NDArray[np.uint64]


def _mix(x: Seeds) -> Seeds:
    """The SplitMix64 output function, elementwise (uint64 arithmetic wraps mod 2**64)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _splitmix64(x: int) -> int:
    """One SplitMix64 step on a Python int."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


# Request seeds need to differ, not to be secret: the Mersenne Twister (seeded from the
# operating system's entropy) draws one in a fraction of a microsecond, without a system call.
_seeds = random.Random(secrets.randbits(128))


def random_seed() -> int:
    """A fresh request seed in 0 .. 2**63 - 1."""
    return _seeds.getrandbits(63)


def derive_many(seed: int, start: int, stop: int) -> Seeds:
    """The seeds of images start .. stop-1 of a request seeded `seed`, as uint64."""
    # Array arithmetic on uint64 wraps silently, which is what SplitMix64 wants.
    index = np.arange(start, stop, dtype=np.uint64)
    offset = np.uint64((_splitmix64(int(seed)) + int(_GOLDEN)) & _MASK64)
    seeds = _mix(index + offset) >> np.uint64(1)
    if start == 0 and stop > 0:
        seeds[0] = seed  # image 0 keeps the request seed
    return seeds


def derive(seed: int, index: int) -> int:
    """The seed of image `index` of a request seeded `seed`; image 0 keeps the request seed."""
    return int(derive_many(seed, index, index + 1)[0])


def _stream(keys: Seeds, count: int) -> Seeds:
    """Numbers 0 .. count-1 of the SplitMix64 streams keyed `keys`: shape (len(keys), count)."""
    steps = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
    return _mix(keys[:, None] + steps[None, :])


def latents(seeds: Seeds, latent_dim: int) -> npt.NDArray[np.float32]:
    """The latent vectors of images with these seeds: shape (len(seeds), latent_dim)."""
    pairs = (latent_dim + 1) // 2
    bits = _stream(seeds, 2 * pairs)
    uniform = ((bits >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
    radius = np.sqrt(-2.0 * np.log(uniform[:, 0::2]))
    angle = _TWO_PI * uniform[:, 1::2]
    z = np.empty((len(seeds), 2 * pairs), np.float32)
    z[:, 0::2] = radius * np.cos(angle)
    z[:, 1::2] = radius * np.sin(angle)
    return z[:, :latent_dim]


def latent(image_seed: int, latent_dim: int) -> npt.NDArray[np.float32]:
    """The latent vector `z` of one image, shape (latent_dim,)."""
    z: npt.NDArray[np.float32] = latents(np.array([image_seed], np.uint64), latent_dim)[0]
    return z


def random_labels(seeds: Seeds, num_classes: int) -> npt.NDArray[np.int64]:
    """The labels of images with these seeds, when the request does not fix one."""
    bits = _stream(_mix(seeds ^ _LABEL_SALT), 1)[:, 0]
    # (53-bit uniform) * num_classes >> 53, in float64 exactly: a multiply-shift range map.
    top = (bits >> np.uint64(11)).astype(np.float64)
    return np.floor(top * num_classes * 2.0**-53).astype(np.int64)


def random_label(image_seed: int, num_classes: int) -> int:
    """The label of one image when the request does not fix it."""
    return int(random_labels(np.array([image_seed], np.uint64), num_classes)[0])


@dataclass(frozen=True)
class Inputs:
    """The generator inputs of some images of a request, one row per image."""

    seeds: Seeds  # (rows,) uint64
    z: npt.NDArray[np.float32]  # (rows, latent_dim)
    labels: npt.NDArray[np.int64] | None  # (rows,), None for unconditional models


@dataclass(frozen=True)
class SeededRows:
    """Rows [start, stop) of a request seeded `seed`, its label fixed or (None) random."""

    seed: int
    start: int
    stop: int
    label: int | None = None


def batch_rows(parts: list[SeededRows], latent_dim: int, num_classes: int | None) -> Inputs:
    """The inputs of several requests' rows, in order, built together: each part gets the
    values it gets alone, with one pass of array operations for a whole run instead of one
    per request (several times less work per small request: docs/benchmarks.md). Labels only
    when `num_classes` is given."""
    seeds = np.concatenate([derive_many(p.seed, p.start, p.stop) for p in parts])
    labels: npt.NDArray[np.int64] | None = None
    if num_classes is not None:
        # -1 marks the rows whose label is random (a fixed label is 0 .. num_classes - 1)
        labels = np.concatenate(
            [np.full(p.stop - p.start, -1 if p.label is None else p.label, np.int64) for p in parts]
        )
        random = labels < 0
        if random.any():
            labels[random] = random_labels(seeds[random], num_classes)
    return Inputs(seeds=seeds, z=latents(seeds, latent_dim), labels=labels)


def make_rows(
    seed: int,
    start: int,
    stop: int,
    latent_dim: int,
    num_classes: int | None,
    label: int | None,
) -> Inputs:
    """Build `z` (and labels when `num_classes` is given) for images start .. stop-1."""
    return batch_rows([SeededRows(seed, start, stop, label)], latent_dim, num_classes)


def make_inputs(
    seed: int, n: int, latent_dim: int, num_classes: int | None, label: int | None
) -> Inputs:
    """Build the inputs of images 0 .. n-1 of a request."""
    return make_rows(seed, 0, n, latent_dim, num_classes, label)
