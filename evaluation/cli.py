"""`gan-evaluate`: score an exported ONNX generator, next to real data and an untrained twin.

    gan-evaluate models/fashion-cdcgan.onnx --out report.json --grid grid.png

Samples the ONNX file with onnxruntime (exactly what the service serves) and computes every
metric of docs/evaluation.md for three rows (`evaluation.report`). Prints a table on
stdout, progress on stderr; user errors are one line and exit 2. Needs no torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.console import OneLineParser, fail
from core.contract import ModelError
from core.datasets import DATASETS, DataError
from evaluation.feature_net import DEFAULT_PATH
from evaluation.render import render_table
from evaluation.report import Options, evaluate, write_report
from evaluation.sampler import EvaluationError

PROG = "gan-evaluate"
MIN_N = 50


def parser() -> OneLineParser:
    p = OneLineParser(
        prog=PROG,
        description="Score an ONNX generator against real data and an untrained generator "
        "of the same architecture (see docs/evaluation.md).",
    )
    p.add_argument(
        "model", type=Path, metavar="MODEL.onnx", help="generator exported by gan-export"
    )
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="fashion-mnist",
        help="real data to compare with (default: %(default)s)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory of idx files (default: $GAN_DATA_DIR, else the "
        "Debian fashion-mnist package)",
    )
    p.add_argument("--n", type=int, default=10000, help="generated samples (default: %(default)s)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of latents, KID subsets and the two-sample test (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--grid", type=Path, default=None, help="write a labelled sample grid (PNG)")
    p.add_argument(
        "--evaluator",
        type=Path,
        default=DEFAULT_PATH,
        help="evaluator ONNX file (default: evaluation/assets/evaluator.onnx)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="CPU threads for onnxruntime and numpy's BLAS; 1 is faster on a "
        "machine busy with other jobs (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help="images per onnxruntime call (default: %(default)s)",
    )
    p.add_argument("--no-untrained", action="store_true", help="skip the untrained reference row")
    return p


def options_from(p: OneLineParser, args: argparse.Namespace) -> Options:
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
        p.error(
            f"evaluator {args.evaluator} not found; retrain it with "
            "`python -m evaluation.train_feature_net --out evaluation/assets/evaluator.onnx`"
        )
    for flag, path in (("--out", args.out), ("--grid", args.grid)):
        if path is not None and not path.parent.is_dir():
            p.error(f"{flag} {path}: directory {path.parent} does not exist")
    if args.grid is not None and args.grid.suffix.lower() != ".png":
        p.error(f"--grid {args.grid}: must end in .png")
    return Options(
        model=args.model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        n=args.n,
        seed=args.seed,
        feature_net=args.evaluator,
        threads=args.threads,
        batch_size=args.batch_size,
        untrained=not args.no_untrained,
        grid=args.grid,
    )


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Cap numpy's BLAS threads: unpinned, OpenBLAS spin-waits for busy cores and small
    products (KID subsets, per-class FCD) get 5-15x slower on a loaded machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (the `eval` extra): without it BLAS uses every core
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    options = options_from(p, args)
    try:
        with blas_threads(options.threads):
            report = evaluate(options)
    except (DataError, EvaluationError, ModelError) as error:
        fail(PROG, str(error))
    if args.out is not None:
        write_report(report, args.out)
    print(render_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
