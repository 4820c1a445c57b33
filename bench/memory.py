"""The whole service's memory under the heaviest load it admits, against its bound: the
memory budget plus each process's base.

    python -m bench memory --workers 2 --budget-mb 256
    python -m bench memory --model cheap --workers 2 --out docs/bench-results/memory-DATE.json

gan-serve starts with `--workers` processes and `GAN_MEMORY_BUDGET_MB=--budget-mb` (each
worker holds its share). The base of a process is its resident memory once ready and warm,
before any load: interpreter, libraries, the model's session and its arena. Then
`--concurrency` clients ask for the largest requests there are (`n = GAN_MAX_SAMPLES`, JSON:
the largest body per image) for `--duration` seconds, while the resident memory of the whole
process tree is sampled every 50 ms. The bound is

    parent's base + workers × the largest worker base + the budget

and the peak must stay under it. Requests refused for lack of room (503) are counted: they
show that admission, not the kernel, held the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path

from bench import httpclient, sidebyside, systems

_SAMPLE_S = 0.05


async def _client(port: int, raw: bytes, stop_at: float, statuses: dict[int, int]) -> None:
    while time.perf_counter() < stop_at:
        answer = await httpclient.timed("127.0.0.1", port, raw, timeout_s=60)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1


async def _load(port: int, raw: bytes, clients: int, seconds: float) -> dict[int, int]:
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, raw, stop_at, statuses) for _ in range(clients)))
    return statuses


def _sample_peak(pid: int, done: threading.Event, peak: list[float]) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], systems.usage(pid).rss_mb)
        time.sleep(_SAMPLE_S)


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--model", default="models/fashion-cdcgan.onnx", help="an ONNX file, or `cheap`"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--budget-mb", type=int, default=256, help="GAN_MEMORY_BUDGET_MB")
    parser.add_argument("--n", type=int, default=1024, help="images per request (GAN_MAX_SAMPLES)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients (default 32)")
    parser.add_argument("--duration", type=float, default=15, help="seconds of load")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    base = systems.SYSTEMS["gan-serve"]
    env = (
        ("GAN_WORKERS", str(args.workers)),
        ("GAN_MEMORY_BUDGET_MB", str(args.budget_mb)),
        ("GAN_MAX_SAMPLES", str(args.n)),
    )
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        model = sidebyside.model_path(args.model, scratch)
        system = systems.System("gan-serve", "gan-serve", None, "/readyz", base.request, env=env)
        server = systems.start(system, model, "cpu", scratch / "logs", scratch)
        try:
            raw = httpclient.raw_request(
                "POST", f"/samples?n={args.n}&format=json", f"127.0.0.1:{server.port}"
            )
            asyncio.run(_load(server.port, raw, 1, 0.5))  # warm: one request at a time
            workers = systems.descendants(server.pid)
            worker_base = max(systems.rss_mb(pid) or 0.0 for pid in workers)
            parent_base = systems.rss_mb(server.pid) or 0.0
            done, peak = threading.Event(), [0.0]
            sampler = threading.Thread(target=_sample_peak, args=(server.pid, done, peak))
            sampler.start()
            statuses = asyncio.run(_load(server.port, raw, args.concurrency, args.duration))
            done.set()
            sampler.join()
        finally:
            server.stop()
    bound = parent_base + args.workers * worker_base + args.budget_mb
    result = {
        "command": "python -m bench memory " + " ".join(argv or []),
        "model": args.model,
        **sidebyside.machine(),
        "workers": args.workers,
        "budget_mb": args.budget_mb,
        "n": args.n,
        "concurrency": args.concurrency,
        "parent_base_mb": parent_base,
        "worker_base_mb": worker_base,
        "bound_mb": round(bound, 1),
        "peak_mb": round(peak[0], 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "pass": peak[0] <= bound,
    }
    print(json.dumps(result, indent=1))
    sidebyside.save(result, args.out)
    return 0 if result["pass"] else 1
