"""`gan-evaluate`: score an exported ONNX generator, next to real data and an untrained twin.

    gan-evaluate models/fashion-cdcgan.onnx --out report.json --grid grid.png

samples the ONNX file with onnxruntime (exactly what the service serves) and computes every
metric of docs/evaluation.md for three rows: the model; **real vs real** (held-out training
images against the test split: the floor); and an **untrained** generator of the same graph
with freshly drawn weights (training/untrained.py). Features and class probabilities come
from the evaluator network (training/evaluator.py), whose sha256 is in every report.
Prints a table on stdout, progress on stderr; user errors are one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from training import pixel_metrics as pm
from training import quality_metrics as qm
from training.data import DATASETS, DataError, ImageDataset, load_dataset, to_unit_range
from training.eval_report import render_grid, render_table
from training.evaluator import DEFAULT_EVALUATOR_PATH
from training.onnx_runner import EvaluationError, Evaluator, GeneratorFile
from training.untrained import reinitialise

REPORT_FORMAT_VERSION = 1
SPLIT_SEED = 0  # the held-out/reference split of the training set is the same for every run
PARZEN_VALIDATION = 1000
MIN_N = 50


@dataclass(frozen=True)
class Reference:
    """Everything about the real data that every row is compared with, computed once."""

    test_features: np.ndarray  # (T, F)
    test_labels: np.ndarray  # (T,)
    test_radii: dict[int, np.ndarray]
    test_pixels: np.ndarray  # (T, 784) float32 in [0, 1]
    test_nn: np.ndarray  # (T,) distance to the nearest training image
    train_pixels: np.ndarray  # (N_train, 784): the memorisation check's training set
    validation_pixels: np.ndarray  # (V, 784): Parzen sigma selection, disjoint from the samples
    num_classes: int


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser() -> OneLineParser:
    p = OneLineParser(
        prog="gan-evaluate",
        description="Score an ONNX generator against real data and an untrained generator "
        "of the same architecture (see docs/evaluation.md).",
    )
    p.add_argument(
        "model", type=Path, metavar="MODEL.onnx", help="generator exported by gan-export"
    )
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist",
                   help="real data to compare with (default: %(default)s)")  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory of idx files (default: $GAN_DATA_DIR, else the "
                   "Debian fashion-mnist package)")  # fmt: skip
    p.add_argument("--n", type=int, default=10000, help="generated samples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of latents, KID subsets and the two-sample test "
                   "(default: %(default)s)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--grid", type=Path, default=None, help="write a labelled sample grid (PNG)")
    p.add_argument("--evaluator", type=Path, default=DEFAULT_EVALUATOR_PATH,
                   help="evaluator ONNX file (default: training/assets/evaluator.onnx)")
    p.add_argument("--threads", type=int, default=2,
                   help="CPU threads for onnxruntime and numpy's BLAS; 1 is faster on a "
                   "machine busy with other jobs (default: %(default)s)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=500,
                   help="images per onnxruntime call (default: %(default)s)")  # fmt: skip
    p.add_argument("--no-untrained", action="store_true", help="skip the untrained reference row")
    return p


def _check_args(p: OneLineParser, args: argparse.Namespace) -> None:
    """Every option problem as one line, before any work is done."""
    if args.n < MIN_N:
        p.error(f"--n must be at least {MIN_N}, got {args.n}")
    if args.seed < 0:
        p.error(f"--seed must be non-negative, got {args.seed}")
    if args.threads < 1 or args.batch_size < 1:
        p.error("--threads and --batch-size must be at least 1")
    if not args.model.is_file():
        p.error(f"{args.model}: no such file")
    if not args.evaluator.is_file():
        p.error(f"evaluator {args.evaluator} not found; retrain it with "
                "`python -m training.evaluator --out training/assets/evaluator.onnx`")  # fmt: skip
    for flag, path in (("--out", args.out), ("--grid", args.grid)):
        if path is not None and not path.parent.is_dir():
            p.error(f"{flag} {path}: directory {path.parent} does not exist")
    if args.grid is not None and args.grid.suffix.lower() != ".png":
        p.error(f"--grid {args.grid}: must end in .png")


def _split_train(train: ImageDataset, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of held-out training images (the real-vs-real samples) and of the rest (where
    the Parzen validation images come from, so they never coincide with the samples)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    held = min(n, len(train) // 2)
    return order[:held], order[held:]


def _pixels(images_pm1: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] → (N, H·W) float32 in [0, 1], the Parzen protocol's space."""
    return np.clip((images_pm1.reshape(len(images_pm1), -1) + 1.0) / 2.0, 0.0, 1.0)


def build_reference(
    train: ImageDataset, test: ImageDataset, evaluator: Evaluator, reference_idx: np.ndarray
) -> Reference:
    test_images = to_unit_range(test.images)
    _, test_features = evaluator.run(test_images)
    train_pixels = _pixels(to_unit_range(train.images))
    test_pixels = _pixels(test_images)
    return Reference(
        test_features=test_features,
        test_labels=test.labels,
        test_radii=qm.knn_radii(test_features, (3, 5)),
        test_pixels=test_pixels,
        test_nn=pm.nearest_distances(test_pixels, train_pixels),
        train_pixels=train_pixels,
        validation_pixels=train_pixels[reference_idx[:PARZEN_VALIDATION]],
        num_classes=test.num_classes,
    )


def score(
    images: np.ndarray,
    labels: np.ndarray | None,
    ref: Reference,
    evaluator: Evaluator,
    seed: int,
    timings: dict[str, float],
    row: str,
    train_index: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every metric for one set of images ``(N, 1, 28, 28)`` in [-1, 1].

    `labels` are the requested classes of a conditional model (or the true classes of real
    images); they enable label accuracy and per-class FCD. `train_index` marks images taken
    from the training split, so the memorisation check does not match them with themselves."""

    def lap(stage: str, started: float) -> float:
        now = time.perf_counter()
        timings[f"{row}.{stage}"] = round(now - started, 2)
        return now

    t = time.perf_counter()
    logits, features = evaluator.run(images)
    predicted = logits.argmax(axis=1)
    t = lap("evaluator", t)
    k = ref.num_classes
    out: dict[str, Any] = {"n": len(images)}
    out["fcd"] = qm.frechet_distance_features(features, ref.test_features)
    kid_mean, kid_std = qm.kernel_inception_distance(features, ref.test_features, seed=seed)
    out["kid"] = {"mean": kid_mean, "std": kid_std}
    is_mean, is_std = qm.inception_score(logits)
    out["inception_score"] = {"mean": is_mean, "std": is_std}
    t = lap("fcd_kid_is", t)
    out.update(qm.precision_recall_density_coverage(
        ref.test_features, features, real_radii=ref.test_radii))  # fmt: skip
    t = lap("prdc", t)
    out["class_histogram"] = qm.class_histogram(predicted, k)
    out["label_accuracy"] = out["label_accuracy_per_class"] = out["fcd_per_class"] = None
    if labels is not None:
        out["label_accuracy"], out["label_accuracy_per_class"] = qm.label_accuracy(
            labels, predicted, k
        )
        out["fcd_per_class"] = [
            qm.frechet_distance_features(features[labels == c], real_c)
            if (labels == c).sum() >= 2 and len(real_c) >= 2 else None
            for c in range(k)
            for real_c in [ref.test_features[ref.test_labels == c]]
        ]  # fmt: skip
    out["c2st"] = qm.classifier_two_sample_test(ref.test_features, features, seed=seed)
    t = lap("classes_c2st", t)
    pixels = _pixels(images)
    out["parzen"] = pm.parzen_evaluate(pixels, ref.validation_pixels, ref.test_pixels).as_dict()
    t = lap("parzen", t)
    out["memorisation"] = pm.memorisation(
        pm.nearest_distances(pixels, ref.train_pixels, exclude=train_index), ref.test_nn
    )
    lap("memorisation", t)
    return out


def score_untrained(
    generator: GeneratorFile,
    z: np.ndarray,
    labels: np.ndarray | None,
    ref: Reference,
    evaluator: Evaluator,
    args: argparse.Namespace,
    timings: dict[str, float],
    rows: dict[str, Any],
) -> dict[str, Any]:
    """Score the same graph with fresh weights (same latents) into ``rows["untrained"]``;
    returns how the weights were drawn."""
    fresh, info = reinitialise(generator.model, generator.arch or "", args.seed)
    if not info["reinitialised"].get("weight"):
        return {"skipped": "no weight tensors recognised in the graph", **info}
    twin = GeneratorFile(fresh, generator.path, args.threads, args.batch_size)
    t = time.perf_counter()
    untrained_images = twin.sample(z, labels)
    timings["untrained.sample"] = round(time.perf_counter() - t, 2)
    rows["untrained"] = score(untrained_images, labels, ref, evaluator, args.seed, timings,
                              "untrained")  # fmt: skip
    return info


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Cap numpy's BLAS threads: unpinned, OpenBLAS spin-waits for busy cores and small
    products (KID subsets, per-class FCD) get 5-15x slower on a loaded machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS uses every core
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    generator = GeneratorFile.load(args.model, threads=args.threads, batch_size=args.batch_size)
    evaluator = Evaluator(args.evaluator, threads=args.threads, batch_size=args.batch_size)
    train = load_dataset(args.dataset, args.data_dir, "train")
    test = load_dataset(args.dataset, args.data_dir, "test")
    generator.check_compatible(test, evaluator)
    if generator.dataset not in (None, args.dataset):
        log(f"note: {args.model.name} was trained on {generator.dataset}, "
            f"scored against {args.dataset}")  # fmt: skip
    held_idx, reference_idx = _split_train(train, args.n)
    ref = build_reference(train, test, evaluator, reference_idx)
    timings["reference"] = round(time.perf_counter() - started, 2)
    log(f"reference: {len(test)} test images, {len(train)} training images")

    rng = np.random.default_rng(args.seed)
    z = rng.standard_normal((args.n, generator.latent_dim)).astype(np.float32)
    labels = None
    if generator.conditional:  # balanced: n/K samples of each requested class
        labels = np.arange(args.n, dtype=np.int64) % generator.num_classes
    t = time.perf_counter()
    images = generator.sample(z, labels)
    timings["model.sample"] = round(time.perf_counter() - t, 2)
    rows: dict[str, Any] = {"model": score(images, labels, ref, evaluator, args.seed, timings,
                                           "model")}  # fmt: skip
    log("model scored")
    real_labels = train.labels[held_idx] if generator.conditional else None
    real_images = to_unit_range(train.images[held_idx])
    rows["real"] = score(real_images, real_labels, ref, evaluator, args.seed, timings, "real",
                         train_index=held_idx)  # fmt: skip
    log(f"real vs real scored ({len(held_idx)} held-out training images)")
    untrained_info: dict[str, Any] | None = None
    if not args.no_untrained:
        untrained_info = score_untrained(generator, z, labels, ref, evaluator, args, timings, rows)
        log(f"untrained generator: {untrained_info.get('skipped', 'scored')}")
    if args.grid is not None:
        groups = labels if labels is not None else evaluator.run(images)[0].argmax(axis=1)
        class_names = generator.class_names or list(test.class_names)
        name = generator.metadata.get("name", args.model.stem)
        render_grid(images, groups, labels is not None, class_names, name, args.grid)
    report = {
        "format_version": REPORT_FORMAT_VERSION,
        "model": generator.describe(),
        "evaluator": evaluator.describe(),
        "dataset": {
            "name": args.dataset,
            "train_fingerprint": train.fingerprint(),
            "test_fingerprint": test.fingerprint(),
            "test_size": len(test),
            "real_samples": len(held_idx),
            "train_size": len(train),
            "class_names": list(test.class_names),
        },
        "settings": {
            "n": args.n,
            "seed": args.seed,
            "split_seed": SPLIT_SEED,
            "k_precision_recall": 3,
            "k_density_coverage": 5,
            "kid": {"subsets": 100, "subset_size": min(1000, args.n, len(test))},
            "inception_score_splits": 10,
            "parzen": {
                "sigmas": list(pm.DEFAULT_SIGMAS),
                "validation_size": len(ref.validation_pixels),
                "test_size": len(test),
            },
            "memorisation_quantile": 0.05,
            "threads": args.threads,
        },
        "untrained": untrained_info,
        "rows": rows,
        "timings_seconds": timings,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    if args.grid is not None:
        report["grid"] = str(args.grid)
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


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    try:
        with blas_threads(args.threads):
            report = evaluate(args)
    except (DataError, EvaluationError) as error:
        p.exit(2, f"{p.prog}: error: {error}\n")
    if args.out is not None:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
        tmp.replace(args.out)
    print(render_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
