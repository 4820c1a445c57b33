"""The service's three onnxruntime run paths timed on one CPU session: does IO binding pay?

    python -m bench run-paths      # a few seconds

The paths are `plain`, `bound` and `fixed` (`service.models.engine`), on a synthetic
conditional generator (`tests/support/onnx_models.mlp_generator`, latent 100, 1×28×28).
Prints, per batch size, the median and the best of 5 rounds of the microseconds per run of
each path (the figure in docs/service.md, "GPU run path").
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.models.engine import Engine, RunPath
from tests.support.onnx_models import mlp_generator

SHAPE = (1, 28, 28)


def time_paths(path: Path, batch: int, repeats: int, rounds: int = 5) -> dict[str, list[float]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # what gan-serve gives each run slot on the CPU
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    paths: tuple[RunPath, ...] = ("plain", "bound", "fixed")
    engines = {name: Engine(session, path=name) for name in paths}
    rng = np.random.default_rng(0)
    feeds = {
        "z": rng.standard_normal((batch, 100), dtype=np.float32),
        "label": rng.integers(0, 10, batch).astype(np.int64),
    }
    # `size`: fixed buffers are per padded size; the others then use the one session as well
    outputs = [engine.run(feeds, SHAPE, batch) for engine in engines.values()]
    assert all(np.array_equal(outputs[0], out) for out in outputs)  # the same bytes each way
    micros: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):  # interleaved, so drift on the machine hits both alike
        for name, engine in engines.items():
            started = time.perf_counter()
            for _ in range(repeats):
                engine.run(feeds, SHAPE, batch)
            micros[name].append((time.perf_counter() - started) / repeats * 1e6)
    return micros


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0]).parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlp_generator(Path(tmp) / "m.onnx", latent=100, conditional=True, shape=SHAPE)
        for batch, repeats in ((16, 2000), (256, 200)):
            micros = time_paths(path, batch, repeats)
            line = ", ".join(
                f"{name} {statistics.median(v):.1f} µs (best {min(v):.1f})"
                for name, v in micros.items()
            )
            print(f"batch {batch}: {line}")
    return 0
