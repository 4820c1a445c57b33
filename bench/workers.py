"""One worker against several (GAN_WORKERS), side by side: throughput, latency, server CPU.

    python -m bench workers --model cheap --workers 2            # the cheap-model regime
    python -m bench workers --model models/fashion-cdcgan.onnx   # the shipped model
    python -m bench workers --model cheap --out docs/bench-results/workers-DATE.json

Both servers are started at once and stay up; at each concurrency, `--pairs` pairs of
closed-loop `wrk` runs (one thread, `POST /samples?n=N&format=png`) alternate between them,
the order swapped every pair, so a drift of the shared machine's speed falls on both alike
(docs/benchmarks.md, "Measuring through the drift"). Each run records requests/s, p50 and
p99, and the server's CPU per request: the CPU time of its whole process tree during the
run over the requests answered. The figure of a concurrency is the median of its pairs.

`cheap` is the synthetic conditional generator whose run costs a few microseconds per image
(`tests/support/onnx_models.mlp_generator(latent=100, conditional=True)`): where the model is
cheap next to the HTTP work, as on a GPU, the event loop bounds a process. The same command
runs on a CUDA machine (`--provider cuda`) and prints the provider that ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import systems, wrk

CHEAP = "cheap"


def tree_cpu_s(pid: int) -> float:
    """CPU time of `pid` and every process below it so far, in seconds (Linux /proc)."""
    total = 0.0
    for member in [pid, *systems.descendants(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cheap_model(folder: Path) -> Path:
    from tests.support import onnx_models  # the repository's own synthetic generators

    path = folder / "cheap.onnx"
    onnx_models.mlp_generator(path, latent=100, conditional=True)
    return path


def measured_run(
    server: systems.Server, request: wrk.Request, connections: int, duration_s: float
) -> dict[str, Any]:
    wrk.run(server.base_url, request, connections, 1)  # unmeasured: connections, caches
    before = tree_cpu_s(server.pid)
    result = wrk.run(server.base_url, request, connections, duration_s)
    cpu = tree_cpu_s(server.pid) - before
    return {
        "req_per_s": round(result.requests_per_s, 1),
        "p50_ms": result.latency_ms["p50"],
        "p99_ms": result.latency_ms["p99"],
        "non_2xx": result.non_2xx,
        "cpu_ms_per_request": round(1000 * cpu / max(result.ok, 1), 3),
    }


def compare(
    servers: dict[str, systems.Server], request: wrk.Request, args: argparse.Namespace
) -> list[dict[str, Any]]:
    rows = []
    names = list(servers)
    for connections in args.concurrency:
        pairs = []
        for index in range(args.pairs):
            order = names if index % 2 == 0 else names[::-1]
            pairs.append(
                {
                    name: measured_run(servers[name], request, connections, args.duration)
                    for name in order
                }
            )
        row: dict[str, Any] = {"connections": connections, "pairs": pairs}
        for name in names:
            row[name] = {
                key: statistics.median(p[name][key] for p in pairs)
                for key in ("req_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")
            }
        one, many = names
        ratios = [p[many]["req_per_s"] / p[one]["req_per_s"] for p in pairs if p[one]["req_per_s"]]
        row["ratio"] = round(statistics.median(ratios), 3) if ratios else None
        rows.append(row)
        print(
            f"c={connections:>4}: {one} {row[one]['req_per_s']:>8.1f} req/s "
            f"p99 {row[one]['p99_ms']:.1f} ms {row[one]['cpu_ms_per_request']:.3f} ms CPU/req | "
            f"{many} {row[many]['req_per_s']:>8.1f} req/s p99 {row[many]['p99_ms']:.1f} ms "
            f"{row[many]['cpu_ms_per_request']:.3f} ms CPU/req | ×{row['ratio']}",
            flush=True,
        )
    return rows


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default=CHEAP, help="an ONNX file, or `cheap` (default)")
    parser.add_argument("--workers", type=int, default=2, help="N to compare with 1 (default 2)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="connections"
    )
    parser.add_argument("--n", type=int, default=16, help="images per request (default 16)")
    parser.add_argument("--pairs", type=int, default=3, help="alternated pairs (default 3)")
    parser.add_argument("--duration", type=float, default=6, help="seconds per run (default 6)")
    parser.add_argument("--provider", default="cpu", help="GAN_PROVIDERS (default cpu)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        model = cheap_model(scratch) if args.model == CHEAP else Path(args.model)
        base = systems.SYSTEMS["gan-serve"]
        started: dict[str, systems.Server] = {}
        try:
            for count in (1, args.workers):
                name = f"gan-serve-{count}w"
                system = systems.System(
                    name,
                    f"gan-serve, GAN_WORKERS={count}",
                    None,
                    base.ready_path,
                    base.request,
                    env=(("GAN_WORKERS", str(count)), ("GAN_PROVIDERS", args.provider)),
                )
                started[name] = systems.start(
                    system, model, args.provider, scratch / "logs", scratch
                )
            provider, _ = systems.active_provider(next(iter(started.values())).base_url)
            print(f"model {model.name}, provider {provider}, {os.cpu_count()} cores: {cpu_model()}")
            request = base.request(args.n, "png")
            rows = compare(started, request, args)
        finally:
            for server in started.values():
                server.stop()
    result = {
        "command": "python -m bench workers " + " ".join(argv or []),
        "model": args.model,
        "provider": provider,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "workers": args.workers,
        "n": args.n,
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0
