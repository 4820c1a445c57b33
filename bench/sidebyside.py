"""Two running servers measured side by side: alternated pairs of closed-loop `wrk` runs.

At each concurrency, `pairs` pairs of runs alternate between the two servers, the order
swapped every pair, so a drift of the shared machine's speed falls on both alike
(docs/benchmarks.md, "Measuring through the drift"). Each run records requests/s, p50 and
p99, and the server's CPU per request: the CPU time of its whole process tree during the
run over the requests answered. The figure of a concurrency is the median of its pairs; the
ratio is the median of the pairs' ratios (second server over first).

Used by `workers` (one worker against several) and `revisions` (another revision against
this tree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import systems, wrk

CHEAP = "cheap"
FIGURES = ("req_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")


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
    """The synthetic conditional generator whose run costs a few microseconds per image:
    where the model is cheap next to the HTTP work, as on a GPU, the event loop bounds a
    process."""
    from tests.support import onnx_models  # the repository's own synthetic generators

    path = folder / "cheap.onnx"
    onnx_models.mlp_generator(path, latent=100, conditional=True)
    return path


def model_path(name: str, scratch: Path) -> Path:
    """`cheap` made in `scratch`, or the ONNX file `name`."""
    return cheap_model(scratch) if name == CHEAP else Path(name)


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
    servers: dict[str, systems.Server],
    request: wrk.Request,
    concurrency: list[int],
    pairs: int,
    duration_s: float,
) -> list[dict[str, Any]]:
    """One row per concurrency: each server's median figures and the median ratio."""

    def measure(name: str, connections: int) -> dict[str, Any]:
        return measured_run(servers[name], request, connections, duration_s)

    return compare_with(list(servers), measure, concurrency, pairs)


Measure = Callable[[str, int], dict[str, Any]]  # (side, connections) -> one run's FIGURES


def compare_with(
    names: list[str], measure: Measure, concurrency: list[int], pairs: int
) -> list[dict[str, Any]]:
    """`compare` for any way of loading a side: `measure(name, connections)` makes one run."""
    rows = []
    first, second = names
    for connections in concurrency:
        runs = []
        for index in range(pairs):
            order = names if index % 2 == 0 else names[::-1]
            runs.append({name: measure(name, connections) for name in order})
        row: dict[str, Any] = {"connections": connections, "pairs": runs}
        for name in names:
            row[name] = {key: statistics.median(run[name][key] for run in runs) for key in FIGURES}
        ratios = [
            run[second]["req_per_s"] / run[first]["req_per_s"]
            for run in runs
            if run[first]["req_per_s"]
        ]
        row["ratio"] = round(statistics.median(ratios), 3) if ratios else None
        rows.append(row)
        print(_line(row, first, second), flush=True)
    return rows


def _line(row: dict[str, Any], first: str, second: str) -> str:
    def side(name: str) -> str:
        figures = row[name]
        return (
            f"{name} {figures['req_per_s']:>8.1f} req/s p50 {figures['p50_ms']:.2f} ms "
            f"p99 {figures['p99_ms']:.1f} ms {figures['cpu_ms_per_request']:.3f} ms CPU/req"
        )

    return f"c={row['connections']:>4}: {side(first)} | {side(second)} | ×{row['ratio']}"


def save(result: dict[str, Any], out: Path | None) -> None:
    """A command's result as JSON at `out` (its folder made), when one is given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")


def machine() -> dict[str, Any]:
    """What ran the measurement, for the result's header."""
    return {"cpu": cpu_model(), "cores": os.cpu_count()}


@dataclass(frozen=True)
class Side:
    """One of the two servers: gan-serve with these settings, from this checkout."""

    name: str
    env: tuple[tuple[str, str], ...] = ()
    source: Path | None = None  # another checkout's code; None: this one


def setting(item: str) -> tuple[str, str]:
    """`--env NAME=VALUE`, read."""
    name, equals, value = item.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{item!r} is not NAME=VALUE")
    return name, value


def add_env_option(parser: argparse.ArgumentParser, help: str) -> None:
    """`--env NAME=VALUE`, repeatable: gan-serve settings, as `args.env` [(name, value)]."""
    parser.add_argument(
        "--env", action="append", type=setting, default=[], metavar="NAME=VALUE", help=help
    )


def header(command: str, args: argparse.Namespace, provider: str) -> dict[str, Any]:
    """The first fields of a command's result: what ran, on which model, provider, machine."""
    return {"command": command, "model": args.model, "provider": provider, **machine()}


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options every side-by-side command takes."""
    parser.add_argument("--model", default=CHEAP, help="an ONNX file, or `cheap` (default)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="connections"
    )
    parser.add_argument("--n", type=int, default=16, help="images per request (default 16)")
    parser.add_argument("--pairs", type=int, default=3, help="alternated pairs (default 3)")
    parser.add_argument("--duration", type=float, default=6, help="seconds per run (default 6)")
    parser.add_argument("--provider", default="cpu", help="GAN_PROVIDERS (default cpu)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")


def run(sides: tuple[Side, Side], args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Start both sides on `args.model`, compare them, stop them; the result as a dict (also
    written to `args.out` when given)."""
    base = systems.SYSTEMS["gan-serve"]
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        model = model_path(args.model, scratch)
        started: dict[str, systems.Server] = {}
        try:
            for side in sides:
                env = (*side.env, ("GAN_PROVIDERS", args.provider))
                system = systems.System(
                    side.name, side.name, None, base.ready_path, base.request, env=env
                )
                started[side.name] = systems.start(
                    system, model, args.provider, scratch / "logs", scratch, source=side.source
                )
            provider, _ = systems.active_provider(started[sides[0].name].base_url)
            print(f"model {model.name}, provider {provider}, {os.cpu_count()} cores: {cpu_model()}")
            request = base.request(args.n, "png")
            rows = compare(started, request, args.concurrency, args.pairs, args.duration)
        finally:
            for server in started.values():
                server.stop()
    result = {
        **header(command, args, provider),
        "sides": {side.name: dict(side.env) for side in sides},
        "n": args.n,
        "rows": rows,
    }
    save(result, args.out)
    return result
