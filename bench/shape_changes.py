"""What a change of batch size costs one onnxruntime session, in-process.

For each batch size: the first run, then the median of steady runs at that size; then the
median of runs that alternate between sizes on the same session. On CUDA, per cuDNN
algorithm search mode (onnxruntime's `cudnn_conv_algo_search`). This is the measurement
behind the service's one session per padded batch size on CUDA (service/models/generator.py).

    python -m bench shape-changes [--model FILE] [--provider cpu|cuda] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from service.models import providers

SIZES = (16, 32, 64, 256)
CUDNN_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def measure(session: ort.InferenceSession, repeats: int) -> dict[str, Any]:
    """First and steady run per size, then runs alternating over SIZES, in milliseconds."""
    inputs = {i.name for i in session.get_inputs()}
    latent = int(session.get_inputs()[0].shape[1])

    def feeds(size: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"z": np.zeros((size, latent), np.float32)}
        if "label" in inputs:
            out["label"] = np.zeros(size, np.int64)
        return out

    def timed(feed: dict[str, np.ndarray]) -> float:
        started = time.perf_counter()
        session.run(None, feed)
        return time.perf_counter() - started

    per_size = {}
    for size in SIZES:
        feed = feeds(size)
        first = timed(feed)
        steady = statistics.median(timed(feed) for _ in range(repeats))
        per_size[size] = {"first_ms": _ms(first), "steady_ms": _ms(steady)}
    alternating = [timed(feeds(SIZES[i % len(SIZES)])) for i in range(repeats * len(SIZES))]
    return {"per_size": per_size, "alternating_median_ms": _ms(statistics.median(alternating))}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/fashion-cdcgan.onnx", help="generator file")
    parser.add_argument("--provider", choices=["cpu", "cuda"], default="cpu", help="where it runs")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per measurement")
    args = parser.parse_args(argv)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    results: dict[str, Any] = {"model": args.model, "onnxruntime": ort.__version__}
    if args.provider == "cpu":
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        results["cpu"] = measure(session, args.repeats)
    else:
        if problem := providers.cuda_problem():  # also loads CUDA from nvidia-* packages
            print(f"CUDA cannot run here: {problem}", file=sys.stderr)
            return 2
        for search in CUDNN_SEARCH:
            cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": search})
            session = ort.InferenceSession(args.model, options, providers=[cuda])
            results[f"cuda {search}"] = measure(session, args.repeats)
    print(json.dumps(results, indent=1))
    return 0
