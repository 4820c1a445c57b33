"""One worker against several (GAN_WORKERS), side by side: throughput, latency, server CPU.

    python -m bench workers --model cheap --workers 2            # the cheap-model regime
    python -m bench workers --model models/fashion-cdcgan.onnx   # the shipped model
    python -m bench workers --model cheap --out docs/bench-results/workers-DATE.json

Both servers are started at once and stay up; at each concurrency, `--pairs` pairs of
closed-loop `wrk` runs (one thread, `POST /samples?n=N&format=png`) alternate between them
(`bench.sidebyside`). `cheap` is the synthetic conditional generator whose run costs a few
microseconds per image (`tests/support/onnx_models.mlp_generator(latent=100,
conditional=True)`): where the model is cheap next to the HTTP work, as on a GPU, the event
loop bounds a process. The same command runs on a CUDA machine (`--provider cuda`) and prints
the provider that ran.
"""

from __future__ import annotations

import argparse

from bench import sidebyside
from bench.sidebyside import Side


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2, help="N to compare with 1 (default 2)")
    sidebyside.add_options(parser)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    sides = tuple(
        Side(f"gan-serve-{count}w", (("GAN_WORKERS", str(count)),)) for count in (1, args.workers)
    )
    command = "python -m bench workers " + " ".join(argv or [])
    sidebyside.run((sides[0], sides[1]), args, command)
    return 0
