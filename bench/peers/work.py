"""The work each peer does per request, the same as gan-serve's for `n=16&format=png`:
n latent vectors and labels, one onnxruntime run, uint8 pixels, one near-square grid with
2 px of black padding, one PNG at compress_level=1.

Peers run in their own virtual environments (numpy, isal, onnxruntime and their framework,
no repository package installed); from the checkout this module imports only what needs no
more than numpy and isal: `core/pixels.py` (the uint8 conversion and the grid) and
`service/encoding/png.py` (the PNG writer), so that every system does exactly the same work.
Settings come from the environment the benchmark starts them with: BENCH_MODEL (the ONNX
file), BENCH_PROVIDER (`cpu` or `cuda`), BENCH_THREADS (intra-op threads, default 1).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

# Both need only numpy (and isal): the peers import them from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from core.pixels import grid, to_uint8
from service.encoding.png import encode_png

_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}


class Sampler:
    """One onnxruntime session on the generator and the inputs it takes."""

    def __init__(self, model: str, provider: str = "cpu", threads: int = 1) -> None:
        if provider == "cuda" and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* pip packages, as the docs advise
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=_PROVIDERS[provider])
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.latent_dim = int(inputs["z"].shape[1])
        self.conditional = "label" in inputs
        meta = self.session.get_modelmeta().custom_metadata_map
        self.num_classes = int(meta.get("num_classes", 10))
        self.rng = np.random.default_rng()
        self.provider = self.session.get_providers()[0]

    @classmethod
    def from_env(cls) -> Sampler:
        return cls(
            os.environ["BENCH_MODEL"],
            os.environ.get("BENCH_PROVIDER", "cpu"),
            int(os.environ.get("BENCH_THREADS", "1")),
        )

    def generate(self, n: int) -> np.ndarray:
        """(n, C, H, W) uint8 images from fresh random inputs, in one run."""
        feeds: dict[str, np.ndarray] = {
            "z": self.rng.standard_normal((n, self.latent_dim), dtype=np.float32)
        }
        if self.conditional:
            feeds["label"] = self.rng.integers(self.num_classes, size=n, dtype=np.int64)
        (images,) = self.session.run(["image"], feeds)
        return to_uint8(images)

    def raw(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """The generator itself: z (B, latent) [+ labels (B,)] -> float32 images (B, C, H, W)."""
        feeds = {"z": np.ascontiguousarray(z, np.float32)}
        if self.conditional and labels is not None:
            feeds["label"] = np.ascontiguousarray(labels, np.int64)
        (images,) = self.session.run(["image"], feeds)
        return np.asarray(images, np.float32)

    def pngs(self, counts: Sequence[int]) -> list[bytes]:
        """One grid PNG per request of counts[i] images; all images in one run."""
        images = self.generate(sum(counts))
        bounds = np.cumsum([0, *counts])
        return [grid_png(images[a:b]) for a, b in itertools.pairwise(bounds)]


def png(image: np.ndarray) -> bytes:
    """(C, H, W) uint8 -> PNG bytes at compression level 1 (grey, RGB or RGBA by C), with
    gan-serve's own writer: every system pays the same for its PNG, so the comparison is of
    the serving, not of the encoder (Pillow's writer costs more; docs/benchmarks.md)."""
    return encode_png(image)


def grid_png(images: np.ndarray) -> bytes:
    return png(grid(images))
