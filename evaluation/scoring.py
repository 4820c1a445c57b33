"""Scoring one set of images: every metric of the table (`evaluation.metrics`) against the
real reference data, which is prepared once per run (`Reference`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.datasets import ImageDataset, to_unit_range
from evaluation.distances import knn_radii, nearest_distances
from evaluation.feature_net import FeatureNet
from evaluation.metrics import compute, param

PARZEN_VALIDATION = 1000  # validation images that pick the Parzen sigma


@dataclass(frozen=True)
class Reference:
    """Everything about the real data that every row is compared with, computed once."""

    test_features: np.ndarray  # (T, F)
    test_labels: np.ndarray  # (T,)
    test_radii: dict[int, np.ndarray]
    test_pixels: np.ndarray  # (T, H·W) float32 in [0, 1]
    test_nn: np.ndarray  # (T,) distance to the nearest training image
    train_pixels: np.ndarray  # (N_train, H·W): the memorisation check's training set
    validation_pixels: np.ndarray  # (V, H·W): Parzen sigma selection, disjoint from the samples
    num_classes: int


def unit_pixels(images_pm1: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] → (N, H·W) float32 in [0, 1], the Parzen protocol's space."""
    return np.clip((images_pm1.reshape(len(images_pm1), -1) + 1.0) / 2.0, 0.0, 1.0)


def build_reference(
    train: ImageDataset, test: ImageDataset, net: FeatureNet, validation_idx: np.ndarray
) -> Reference:
    """The test split through the evaluator network, and the pixel sets; `validation_idx`
    are training images never used as real-row samples."""
    test_images = to_unit_range(test.images)
    _, test_features = net.run(test_images)
    train_pixels = unit_pixels(to_unit_range(train.images))
    test_pixels = unit_pixels(test_images)
    ks = (param("prdc", "k_pr"), param("prdc", "k_dc"))
    return Reference(
        test_features=test_features,
        test_labels=test.labels,
        test_radii=knn_radii(test_features, ks),
        test_pixels=test_pixels,
        test_nn=nearest_distances(test_pixels, train_pixels),
        train_pixels=train_pixels,
        validation_pixels=train_pixels[validation_idx[:PARZEN_VALIDATION]],
        num_classes=test.num_classes,
    )


def score(
    images: np.ndarray,
    labels: np.ndarray | None,
    ref: Reference,
    net: FeatureNet,
    seed: int,
    timings: dict[str, float],
    row: str,
    train_index: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every metric for one set of images ``(N, 1, 28, 28)`` in [-1, 1].

    `labels` are the requested classes of a conditional model (or the true classes of real
    images); they enable label accuracy and per-class FCD. `train_index` marks images taken
    from the training split, so the memorisation check does not match them with themselves.
    Each stage's seconds go into `timings` as "<row>.<stage>"."""

    def lap(stage: str, started: float) -> float:
        now = time.perf_counter()
        timings[f"{row}.{stage}"] = round(now - started, 2)
        return now

    t = time.perf_counter()
    logits, features = net.run(images)
    predicted = logits.argmax(axis=1)
    t = lap("evaluator", t)
    k = ref.num_classes
    out: dict[str, Any] = {"n": len(images)}
    out["fcd"] = compute("fcd", features, ref.test_features)
    kid_mean, kid_std = compute("kid", features, ref.test_features, seed=seed)
    out["kid"] = {"mean": kid_mean, "std": kid_std}
    is_mean, is_std = compute("inception_score", logits)
    out["inception_score"] = {"mean": is_mean, "std": is_std}
    t = lap("fcd_kid_is", t)
    out.update(compute("prdc", ref.test_features, features, real_radii=ref.test_radii))
    t = lap("prdc", t)
    out["class_histogram"] = compute("class_histogram", predicted, k)
    out["label_accuracy"] = out["label_accuracy_per_class"] = out["fcd_per_class"] = None
    if labels is not None:
        out["label_accuracy"], out["label_accuracy_per_class"] = compute(
            "label_accuracy", labels, predicted, k
        )
        out["fcd_per_class"] = [_class_fcd(features, labels, ref, c) for c in range(k)]
    out["c2st"] = compute("c2st", ref.test_features, features, seed=seed)
    t = lap("classes_c2st", t)
    pixels = unit_pixels(images)
    parzen = compute("parzen", pixels, ref.validation_pixels, ref.test_pixels)
    out["parzen"] = parzen.as_dict()
    t = lap("parzen", t)
    sample_nn = nearest_distances(pixels, ref.train_pixels, exclude=train_index)
    out["memorisation"] = compute("memorisation", sample_nn, ref.test_nn)
    lap("memorisation", t)
    return out


def _class_fcd(features: np.ndarray, labels: np.ndarray, ref: Reference, c: int) -> float | None:
    """FCD of the samples asked for class c against the test images of class c."""
    fake, real = features[labels == c], ref.test_features[ref.test_labels == c]
    if len(fake) < 2 or len(real) < 2:
        return None
    value: float = compute("fcd", fake, real)
    return value
