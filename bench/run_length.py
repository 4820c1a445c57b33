"""What one onnxruntime run of each batch size costs here: the ground for GAN_MAX_RUN_MS.

    python -m bench run-length                       # the shipped default model, CPU
    python -m bench run-length --sizes 16 64 256 --rounds 6 --out run-length.json

For each batch size, with one intra-op thread per run (the service's layout on a CPU):
- **alone**: one run at a time, ms per run and µs per image;
- **together**: `--threads` runs at once on one session, as the run slots run them: images/s
  (the cores share caches and memory bandwidth, which one run alone does not show);
- **longest node**: the share of a run spent in its slowest node (onnxruntime's profile). A
  run whose clients have all gone stops only between two nodes, so this much of a run cannot
  be stopped once it has started.

Sizes are interleaved within each round, so a machine that slows down mid-run slows every
size alike; medians are printed with every round's value.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.limit import cores, one_thread_session, random_feeds

REPO = Path(__file__).resolve().parent.parent


def _feeds(session: ort.InferenceSession, size: int) -> dict[str, np.ndarray]:
    return random_feeds(session, size, np.random.default_rng(size))


def alone_s(session: ort.InferenceSession, size: int, images: int) -> float:
    """Seconds per run, one run at a time, over about `images` images."""
    feeds = _feeds(session, size)
    runs = max(3, images // size)
    started = time.perf_counter()
    for _ in range(runs):
        session.run(None, feeds)
    return (time.perf_counter() - started) / runs


def together_rate(session: ort.InferenceSession, size: int, threads: int, images: int) -> float:
    """Images/s with `threads` runs at once, each thread running about `images` images."""
    feeds = _feeds(session, size)
    runs = max(2, images // size)
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for _ in range(runs):
            session.run(None, feeds)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * runs * size / (time.perf_counter() - started)


def longest_node_share(model: Path, size: int) -> tuple[str, float]:
    """(op type, share of the run) of the slowest node of one warm run at `size`."""
    with tempfile.TemporaryDirectory() as scratch:
        session = one_thread_session(str(model), profile_prefix=str(Path(scratch) / "run"))
        feeds = _feeds(session, size)
        session.run(None, feeds)
        session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    last = max(runs, key=lambda e: e["ts"])
    nodes = [
        e
        for e in events
        if e.get("cat") == "Node"
        and e["name"].endswith("_kernel_time")
        and last["ts"] <= e["ts"] <= last["ts"] + last["dur"]
    ]
    slowest = max(nodes, key=lambda e: e["dur"])
    return str(slowest["args"].get("op_name", "?")), slowest["dur"] / last["dur"]


def measure(
    model: Path, sizes: list[int], threads: int, rounds: int, images: int
) -> dict[str, Any]:
    session = one_thread_session(str(model))
    for size in sizes:  # first runs at a shape set up memory: unmeasured
        session.run(None, _feeds(session, size))
    alone: dict[int, list[float]] = {size: [] for size in sizes}
    together: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size in sizes:
            alone[size].append(alone_s(session, size, images))
            together[size].append(together_rate(session, size, threads, images))
    rows = []
    for size in sizes:
        op, share = longest_node_share(model, size)
        run_s = statistics.median(alone[size])
        rows.append(
            {
                "batch": size,
                "run_ms": round(run_s * 1000, 2),
                "us_per_image": round(run_s / size * 1e6, 1),
                "together_images_per_s": round(statistics.median(together[size])),
                "together_rounds": [round(r) for r in together[size]],
                "longest_node": op,
                "longest_node_share": round(share, 3),
            }
        )
    return {"model": str(model), "threads": threads, "cores": cores(), "sizes": rows}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", type=Path, default=REPO / "models" / "fashion-cdcgan.onnx")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--threads", type=int, default=cores(), help="runs at once (run slots)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--images", type=int, default=768, help="images per size, thread and round")
    p.add_argument("--out", type=Path, help="JSON path")
    args = p.parse_args(argv)
    if not args.model.is_file() or min(args.sizes) < 1:
        p.error(f"no model file {args.model}" if not args.model.is_file() else "sizes ≥ 1")
    result = measure(args.model, args.sizes, args.threads, args.rounds, args.images)
    print(f"{result['model']}: one intra-op thread per run; {args.threads} runs at once")
    print("| batch | run ms | µs / image | images/s, runs at once (rounds) | longest node |")
    print("|---|---|---|---|---|")
    for row in result["sizes"]:
        rounds = ", ".join(map(str, row["together_rounds"]))
        print(
            f"| {row['batch']} | {row['run_ms']} | {row['us_per_image']} | "
            f"{row['together_images_per_s']} ({rounds}) | "
            f"{row['longest_node']} {100 * row['longest_node_share']:.0f} % |"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0
