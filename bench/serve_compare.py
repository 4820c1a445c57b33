"""Serving benchmark: gan-serve against the machine's limit and the servers a user would
pick instead, in one run on one model (issue 8; method in docs/benchmarks.md).

    python bench/serve_compare.py                 # the full run (about 35 min on 2 cores)
    python bench/serve_compare.py --quick         # a smoke run of every part, a few minutes
    python bench/serve_compare.py --systems gan-serve fastapi --experiments closed

Parts (`--experiments`): limit (in-process onnxruntime + the service's encoding), closed
(wrk, every system, rounds with the order rotated), versus (gan-serve and the best peer of
the closed rounds side by side, runs alternated in pairs), onoff (batching on vs off, n = 1,
c = 64, the same way), openloop (highest arrival rate held with p99 ≤ 100 ms), overload (4×
capacity, n = 64, /healthz probed), bursts (300 × n = 1024 at once; 200 clients that hang up
at 50 ms). Before each measured run it waits for a quiet machine and records what it saw.
Peers' virtual environments are made once under .bench/venvs/. Prints the tables and
ratios and writes them as Markdown and JSON (`--out`).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import contextlib
import json
import platform
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from typing import Any

from bench import limit, peer_envs, probes, report, systems, wrk
from bench.openloop import raise_fd_limit
from bench.quiet import Quiet, wait_for_quiet

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = ("limit", "closed", "versus", "onoff", "openloop", "overload", "bursts")
ONOFF = (1, 64)  # (n, concurrency) of batching on vs off


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model",
        type=Path,
        default=REPO / "models" / "fashion-cdcgan.onnx",
        help="generator ONNX file every system serves",
    )
    p.add_argument(
        "--systems",
        nargs="+",
        choices=list(systems.SYSTEMS),
        default=list(systems.SYSTEMS),
        help="systems in the closed-loop rounds",
    )
    p.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round, 2 s runs, c = 1 and 32, png, small bursts",
    )
    p.add_argument("--rounds", type=int, default=3, help="closed-loop rounds (order rotated)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per closed-loop run")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per start")
    p.add_argument(
        "--cell-warmup", type=float, default=1.0, help="unmeasured seconds before each run"
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--n", type=int, nargs="+", default=[1, 16], help="images per request")
    p.add_argument("--formats", nargs="+", choices=limit.FORMATS, default=list(limit.FORMATS))
    p.add_argument(
        "--versus-pairs",
        type=int,
        default=3,
        help="alternated pairs of runs per concurrency, gan-serve then its best peer",
    )
    p.add_argument(
        "--onoff-pairs",
        type=int,
        default=4,
        help="alternated pairs of runs, batching on then off (the order swapped each pair)",
    )
    p.add_argument("--openloop-step", type=float, default=5.0, help="seconds per rate step")
    p.add_argument("--openloop-steps", type=int, default=20)
    p.add_argument("--openloop-factor", type=float, default=1.1)
    p.add_argument("--overload-duration", type=float, default=20.0)
    p.add_argument("--burst-clients", type=int, default=300)
    p.add_argument("--disconnect-clients", type=int, default=200)
    p.add_argument(
        "--disconnect-trials",
        type=int,
        default=5,
        help="mass hang-ups in a row on one server (where a run stands when they come varies)",
    )
    p.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="a run starts when others use at most this many cores",
    )
    p.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait, seconds")
    p.add_argument(
        "--service-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra GAN_* settings for gan-serve (both variants)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="JSON path; the Markdown goes beside it "
        "(default .bench/results/serve-compare-<time>.json)",
    )
    return p


def _apply_quick(args: argparse.Namespace) -> None:
    args.rounds, args.duration, args.warmup = 1, 2.0, 1.0
    args.concurrency, args.n, args.formats = [1, 32], [16], ["png"]
    args.openloop_step, args.openloop_steps, args.openloop_factor = 1.0, 4, 1.5
    args.overload_duration, args.burst_clients, args.disconnect_clients = 3.0, 20, 20
    args.disconnect_trials, args.onoff_pairs, args.versus_pairs = 1, 1, 1
    args.quiet_wait = min(args.quiet_wait, 5.0)


def _machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    versions = {}
    for name in ("onnxruntime-gpu", "onnxruntime", "numpy", "pillow", "fastapi", "uvicorn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cpu": cpu,
        "cores": limit.cores(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "versions": versions,
        "wrk": subprocess.run(
            [wrk.wrk_binary(), "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0:1],
    }


class Bench:
    """One benchmark run: where logs go, how to wait, what was measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch = Path(tempfile.mkdtemp(prefix="serve-compare-"))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = args.out or REPO / ".bench" / "results" / f"serve-compare-{stamp}.json"
        self.logs = REPO / ".bench" / "logs" / stamp
        self.env = dict(kv.split("=", 1) for kv in args.service_env)
        self.results: dict[str, Any] = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        }
        self.provider = "cpu"
        self.limits: list[dict[str, Any]] = []  # the limit, measured once per round

    def wait(self) -> Quiet:
        return wait_for_quiet(self.args.quiet_cores, self.args.quiet_wait)

    def start(self, name: str) -> systems.Server:
        # A fresh scratch folder per start: PyTriton wants a workspace that does not exist.
        scratch = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.scratch))
        return systems.start(
            systems.SYSTEMS[name], self.args.model, self.provider, self.logs, scratch, self.env
        )

    def cells(self, name: str) -> list[tuple[int, int, str]]:
        """(n, concurrency, format) runs of one system in one round."""
        a, experiments = self.args, self.args.experiments
        system = systems.SYSTEMS[name]
        out: list[tuple[int, int, str]] = []
        if "closed" in experiments:
            ns = a.n if system.peer is None else [16]
            formats = [f for f in a.formats if f in system.formats]
            out += [(n, c, f) for n in ns for c in a.concurrency for f in formats]
        return out

    def measure_limit(self, round_index: int | None) -> None:
        """The in-process limit, once per round just before gan-serve's cells: the machine's
        speed drifts by ±20 % from minute to minute, and a limit measured once, at the start,
        was up to 1.8× slower than the rounds it was compared with."""
        quiet = self.wait()
        measured = limit.measure(
            str(self.args.model), self.provider, min_s=1.0 if self.args.quick else 3.0
        )
        self.limits.append({**measured, "round": round_index, "quiet": quiet.as_dict()})
        print(f"  limit: {json.dumps(self.limits[-1])[:300]}", flush=True)

    def closed_rounds(self, names: list[str]) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        for round_index in range(self.args.rounds):
            shift = round_index % len(names)
            order = names[shift:] + names[:shift]  # rotate so no system always goes first
            for name in order:
                if not (cells := self.cells(name)):
                    continue
                try:
                    server = self.start(name)
                except RuntimeError as exc:
                    print(f"! {name}: {exc}", file=sys.stderr, flush=True)
                    runs.append({"system": name, "round": round_index, "error": str(exc)})
                    continue
                if name == "gan-serve" and "limit" in self.args.experiments:
                    self.measure_limit(round_index)  # on the quiet machine, server idle
                try:
                    warm = server.system.request(16, "png")
                    wrk.run(server.base_url, warm, 8, self.args.warmup)
                    for n, c, fmt in cells:
                        quiet = self.wait()
                        request = server.system.request(n, fmt)
                        # Unmeasured, at the same concurrency: connection pools inside the
                        # server (BentoML's front → generator calls) may have gone stale
                        # while the machine was idle.
                        wrk.run(server.base_url, request, c, self.args.cell_warmup)
                        result = wrk.run(server.base_url, request, c, self.args.duration)
                        runs.append(
                            {
                                "system": name,
                                "round": round_index,
                                "n": n,
                                "concurrency": c,
                                "format": fmt,
                                "quiet": quiet.as_dict(),
                                **result.as_dict(),
                            }
                        )
                        print(
                            f"  round {round_index + 1} {name} n={n} c={c} {fmt}: "
                            f"{result.requests_per_s:.0f} req/s, "
                            f"p99 {result.latency_ms['p99']:.1f} ms, "
                            f"non-2xx {result.non_2xx}",
                            flush=True,
                        )
                finally:
                    server.stop()
        return runs

    def side_by_side(
        self, names: tuple[str, str], concurrencies: list[int], n: int, pairs: int
    ) -> list[dict[str, Any]]:
        """Two systems started at once, `probes.alternated` at each concurrency (png)."""
        a = self.args
        with contextlib.ExitStack() as running:
            servers = []
            for name in names:
                servers.append(self.start(name))
                running.callback(servers[-1].stop)
            return [
                probes.alternated(
                    (servers[0], servers[1]),
                    self.wait,
                    n=n,
                    fmt="png",
                    connections=c,
                    pairs=pairs,
                    duration_s=a.duration,
                    warmup_s=a.warmup if index == 0 else 0.0,
                    run_warmup_s=a.cell_warmup,
                )
                for index, c in enumerate(concurrencies)
            ]

    def versus(self) -> None:
        """gan-serve against the best peer of the closed rounds at each concurrency (n = 16
        png), side by side, runs alternated: the closed rounds measure each system minutes
        apart, and this machine's drift moved their ratios by ±20 % from run to run."""
        cells = report.summarise(self.results.get("closed", []))
        best: dict[str, list[int]] = {}  # peer -> the concurrencies where it was best
        for c in self.args.concurrency:
            if (peer := report.best_peer(cells, c)) is not None:
                best.setdefault(peer, []).append(c)
        self.results["versus"] = []
        for peer, concurrencies in best.items():
            try:
                self.results["versus"] += self.side_by_side(
                    ("gan-serve", peer), concurrencies, 16, self.args.versus_pairs
                )
            except Exception as exc:  # the other parts' results still count
                self.results["versus"].append({"error": f"{peer}: {type(exc).__name__}: {exc}"})
        print(f"  versus: {json.dumps(self.results['versus'])[:300]}", flush=True)

    def onoff(self) -> None:
        """Batching on against off, the two servers side by side and alternated."""
        n, connections = ONOFF
        try:
            (self.results["onoff"],) = self.side_by_side(
                ("gan-serve", "gan-serve-nobatch"), [connections], n, self.args.onoff_pairs
            )
        except Exception as exc:  # the other parts' results still count
            self.results["onoff"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  onoff: {json.dumps(self.results['onoff'])[:300]}", flush=True)

    def service_probe(self, label: str, probe: Any, **kwargs: Any) -> None:
        server = self.start("gan-serve")
        try:
            self.results[label] = probe(server, self.wait, **kwargs)
        except Exception as exc:  # one failed probe must not lose the others' results
            self.results[label] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            server.stop()
        print(f"  {label}: {json.dumps(self.results[label])[:300]}", flush=True)

    def run(self) -> dict[str, Any]:
        a, res = self.args, self.results
        res["machine"] = _machine()
        res["systems"] = {name: systems.SYSTEMS[name].description for name in a.systems}
        peers = [s for s in a.systems if systems.SYSTEMS[s].peer]
        res["peers"] = {}
        for name in peers:
            peer = systems.SYSTEMS[name].peer
            assert peer is not None
            if peer_envs.installed(peer) is None:
                print(f"making the {name} peer's environment (once; a few minutes)", flush=True)
            try:
                res["peers"][name] = peer_envs.ensure(peer, self.logs / f"{peer}-pip.log")
            except RuntimeError as exc:
                res["peers"][name] = {"error": str(exc)}
                a.systems.remove(name)
        server = self.start("gan-serve")  # which provider is active, and the service's limits
        try:
            self.provider, res["service_card"] = systems.active_provider(server.base_url)
        finally:
            server.stop()
        print(f"gan-serve's active provider: {res['service_card'].get('provider')}", flush=True)
        limits = res["service_card"].get("limits", {})  # the service's deadline
        res["closed"] = self.closed_rounds([s for s in a.systems if s != "gan-serve-nobatch"])
        if "limit" in a.experiments:
            if not self.limits:  # no closed rounds of gan-serve to measure it beside
                self.measure_limit(None)
            res["limit"] = limit.median_of(self.limits)
        if "versus" in a.experiments:
            self.versus()
        if "onoff" in a.experiments:
            self.onoff()
        deadline = float(limits.get("request_timeout_s", 30.0))
        if "openloop" in a.experiments:
            start = report.median_rps(res["closed"], "gan-serve", 16, 32, "png") or 100.0
            self.service_probe(
                "openloop",
                probes.open_loop_search,
                n=16,
                fmt="png",
                start_rate=start * 0.5,
                factor=a.openloop_factor,
                steps=a.openloop_steps,
                step_s=a.openloop_step,
                p99_ms=100.0,
            )
        if "overload" in a.experiments:
            self.service_probe(
                "overload",
                probes.overload,
                n=64,
                fmt="png",
                multiple=4.0,
                capacity_s=a.duration,
                overload_s=a.overload_duration,
            )
        if "bursts" in a.experiments:
            self.service_probe(
                "burst",
                probes.burst,
                clients=a.burst_clients,
                n=1024,
                fmt="png",
                deadline_s=deadline,
            )
            self.service_probe(
                "disconnects",
                probes.disconnect_trials,
                trials=a.disconnect_trials,
                clients=a.disconnect_clients,
                n=1024,
                fmt="png",
                after_s=0.05,
            )
        return res


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        _apply_quick(args)
    if not args.model.is_file():
        print(f"serve_compare: error: no model file {args.model}", file=sys.stderr)
        return 2
    if bad := [kv for kv in args.service_env if "=" not in kv]:
        print(f"serve_compare: error: --service-env wants KEY=VALUE, got {bad[0]}", file=sys.stderr)
        return 2
    try:
        wrk.wrk_binary()
    except RuntimeError as exc:
        print(f"serve_compare: error: {exc}", file=sys.stderr)
        return 2
    raise_fd_limit()
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        shutil.rmtree(bench.scratch, ignore_errors=True)
    markdown = report.markdown(results)
    print("\n" + markdown)
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(results, indent=1) + "\n")
    bench.out.with_suffix(".md").write_text(markdown)
    print(f"wrote {bench.out} and {bench.out.with_suffix('.md')}; logs in {bench.logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
