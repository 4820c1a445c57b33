"""One evaluation run: sample the generator, score it next to real data and an untrained
twin, and assemble the report (its format: docs/evaluation.md, "The report").

Three rows, each against the test split: the model; **real vs real** (held-out training
images: the floor); **untrained**, the same graph with fresh weights
(`evaluation.fresh_weights`: the ceiling of badness). Both generator rows use the same
latents, so their difference is the training alone.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.datasets import ImageDataset, load_dataset, to_unit_range
from evaluation.feature_net import FeatureNet
from evaluation.fresh_weights import reinitialise
from evaluation.metrics import report_settings
from evaluation.render import render_grid
from evaluation.sampler import EvaluationError, GeneratorSampler
from evaluation.scoring import Reference, build_reference, score

REPORT_FORMAT_VERSION = 1
SPLIT_SEED = 0  # the held-out/reference split of the training set is the same for every run


@dataclass(frozen=True)
class Options:
    """What to evaluate and how (gan-evaluate's flags, checked)."""

    model: Path
    dataset: str
    data_dir: Path | None
    n: int
    seed: int
    feature_net: Path
    threads: int
    batch_size: int
    untrained: bool = True
    grid: Path | None = None


def split_train(train: ImageDataset, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of held-out training images (the real-vs-real samples) and of the rest (where
    the Parzen validation images come from, so they never coincide with the samples)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    held = min(n, len(train) // 2)
    return order[:held], order[held:]


def _score_untrained(
    sampler: GeneratorSampler,
    z: np.ndarray,
    labels: np.ndarray | None,
    ref: Reference,
    net: FeatureNet,
    options: Options,
    timings: dict[str, float],
    rows: dict[str, Any],
) -> dict[str, Any]:
    """Score the same graph with fresh weights (same latents) into ``rows["untrained"]``;
    returns how the weights were drawn."""
    fresh, info = reinitialise(sampler.model(), sampler.spec.arch or "", options.seed)
    if not info["reinitialised"].get("weight"):
        return {"skipped": "no weight tensors recognised in the graph", **info}
    t = time.perf_counter()
    images = sampler.twin(fresh).sample(z, labels)
    timings["untrained.sample"] = round(time.perf_counter() - t, 2)
    rows["untrained"] = score(images, labels, ref, net, options.seed, timings, "untrained")
    return info


def evaluate(options: Options) -> dict[str, Any]:
    """Run the whole evaluation; progress lines go to stderr."""
    started, cpu_started = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    sampler = GeneratorSampler.open(options.model, options.threads, options.batch_size)
    spec = sampler.spec
    net = FeatureNet(options.feature_net, threads=options.threads, batch_size=options.batch_size)
    train = load_dataset(options.dataset, options.data_dir, "train")
    test = load_dataset(options.dataset, options.data_dir, "test")
    if spec.image_shape != test.image_shape:
        raise EvaluationError(
            f"{options.model.name} makes images of shape {list(spec.image_shape)}, "
            f"{test.name} has {list(test.image_shape)}"
        )
    if spec.conditional and spec.num_classes != net.num_classes:
        raise EvaluationError(
            f"{options.model.name} has {spec.num_classes} classes, the evaluator {net.num_classes}"
        )
    if spec.dataset not in (None, options.dataset):
        log(
            f"note: {options.model.name} was trained on {spec.dataset}, scored against "
            f"{options.dataset}"
        )
    held_idx, validation_idx = split_train(train, options.n)
    ref = build_reference(train, test, net, validation_idx)
    timings["reference"] = round(time.perf_counter() - started, 2)
    log(f"reference: {len(test)} test images, {len(train)} training images")

    rng = np.random.default_rng(options.seed)
    z = rng.standard_normal((options.n, spec.latent_dim)).astype(np.float32)
    labels = None
    if spec.conditional:  # balanced: n/K samples of each requested class
        assert spec.num_classes is not None
        labels = np.arange(options.n, dtype=np.int64) % spec.num_classes
    t = time.perf_counter()
    images = sampler.sample(z, labels)
    timings["model.sample"] = round(time.perf_counter() - t, 2)
    rows: dict[str, Any] = {
        "model": score(images, labels, ref, net, options.seed, timings, "model")
    }
    log("model scored")
    real_labels = train.labels[held_idx] if spec.conditional else None
    real_images = to_unit_range(train.images[held_idx])
    rows["real"] = score(
        real_images, real_labels, ref, net, options.seed, timings, "real", train_index=held_idx
    )
    log(f"real vs real scored ({len(held_idx)} held-out training images)")
    untrained_info: dict[str, Any] | None = None
    if options.untrained:
        untrained_info = _score_untrained(sampler, z, labels, ref, net, options, timings, rows)
        log(f"untrained generator: {untrained_info.get('skipped', 'scored')}")
    if options.grid is not None:
        groups = labels if labels is not None else net.run(images)[0].argmax(axis=1)
        class_names = list(spec.class_names or test.class_names)
        render_grid(images, groups, labels is not None, class_names, spec.name, options.grid)
    report = {
        "format_version": REPORT_FORMAT_VERSION,
        "model": sampler.describe(),
        "evaluator": net.describe(),
        "dataset": {
            "name": options.dataset,
            "train_fingerprint": train.fingerprint(),
            "test_fingerprint": test.fingerprint(),
            "test_size": len(test),
            "real_samples": len(held_idx),
            "train_size": len(train),
            "class_names": list(test.class_names),
        },
        "settings": {
            "n": options.n,
            "seed": options.seed,
            "split_seed": SPLIT_SEED,
            **report_settings(options.n, len(test), len(ref.validation_pixels)),
            "threads": options.threads,
        },
        "untrained": untrained_info,
        "rows": rows,
        "timings_seconds": timings,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    if options.grid is not None:
        report["grid"] = str(options.grid)
    return report


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: write them as null."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_report(report: dict[str, Any], path: Path) -> None:
    """The report as indented JSON, replaced atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
