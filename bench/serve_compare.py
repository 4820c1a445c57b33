"""gan-serve against the machine's limit and the servers a user would pick instead.

    python -m bench serve-compare                 # the full run
    python -m bench serve-compare --quick         # a smoke run of every part, a few minutes
    python -m bench serve-compare --systems gan-serve fastapi --experiments closed

One run on one model (method and results: docs/benchmarks.md). Parts (`--experiments`):
limit (in-process onnxruntime + the service's encoding), closed (wrk, every system, rounds
with the order rotated), versus (gan-serve and the best peer of the closed rounds side by
side, runs alternated in pairs), onoff (batching on vs off, n = 1, c = 64, the same way),
openloop (highest arrival rate held with p99 ≤ 100 ms), overload (4× capacity, n = 64,
/healthz probed), bursts (300 × n = 1024 at once; 200 clients that hang up at 50 ms). Before
each measured run it waits for a quiet machine and records what it saw. Peers' virtual
environments are made once under .bench/venvs/. Prints the tables and ratios and writes them
as Markdown and JSON (`--out`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import limit, peer_envs, probes, report, results, systems, wrk
from bench.openloop import raise_fd_limit
from bench.quiet import Quiet, wait_for_quiet

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = ("limit", "closed", "versus", "onoff", "openloop", "overload", "bursts")
ONOFF = (1, 64)  # (n, concurrency) of batching on vs off
# --quick: a smoke run of every part; its figures prove the harness works, not the speed.
QUICK: dict[str, Any] = {
    "rounds": 1,
    "duration": 2.0,
    "warmup": 1.0,
    "concurrency": [1, 32],
    "n": [16],
    "formats": ["png"],
    "versus_pairs": 1,
    "onoff_pairs": 1,
    "openloop_step": 1.0,
    "openloop_steps": 4,
    "openloop_factor": 1.5,
    "overload_duration": 3.0,
    "burst_clients": 20,
    "disconnect_clients": 20,
    "disconnect_trials": 1,
}


def _parser(prog: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=_Help)
    run = p.add_argument_group("what runs")
    run.add_argument(
        "--model",
        type=Path,
        default=REPO / "models" / "fashion-cdcgan.onnx",
        metavar="FILE",
        help="generator ONNX file every system serves (default: models/fashion-cdcgan.onnx)",
    )
    _choice(run, "--systems", list(systems.SYSTEMS), "SYSTEM", "systems in the closed rounds")
    _choice(run, "--experiments", list(EXPERIMENTS), "PART", "parts to run")
    run.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round, 2 s runs, c = 1 and 32, n = 16 png, small bursts",
    )
    run.add_argument(
        "--service-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra GAN_* settings for gan-serve (both variants)",
    )
    run.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="JSON path, the Markdown beside it (default: .bench/results/serve-compare-TIME.json)",
    )
    closed = p.add_argument_group("closed-loop rounds (wrk)")
    _number(closed, "--rounds", 3, "N", "rounds, the order of systems rotated")
    _number(closed, "--duration", 10.0, "S", "seconds per run")
    _number(closed, "--warmup", 3.0, "S", "unmeasured seconds after a server starts")
    _number(closed, "--cell-warmup", 1.0, "S", "unmeasured seconds before each run")
    _number(closed, "--concurrency", [1, 8, 32, 128], "C", "connections")
    _number(closed, "--n", [1, 16], "N", "images per request (peers: 16)")
    _choice(closed, "--formats", list(limit.FORMATS), "FORMAT", "answer formats (peers: png)")
    paired = p.add_argument_group("side by side (versus, onoff): pairs of runs, order swapped")
    _number(paired, "--versus-pairs", 3, "N", "pairs per concurrency, gan-serve and its best peer")
    _number(paired, "--onoff-pairs", 4, "N", "pairs, batching on and off")
    loads = p.add_argument_group("open loop and overload (gan-serve alone)")
    _number(loads, "--openloop-step", 5.0, "S", "seconds per arrival-rate step")
    _number(loads, "--openloop-steps", 20, "N", "most rate steps")
    _number(loads, "--openloop-factor", 1.1, "X", "rate multiplier per step")
    _number(loads, "--overload-duration", 20.0, "S", "seconds at 4× capacity")
    bursts = p.add_argument_group("bursts (gan-serve alone)")
    _number(bursts, "--burst-clients", 300, "N", "requests of n = 1024 sent at once")
    _number(bursts, "--disconnect-clients", 200, "N", "clients of n = 1024 gone after 50 ms")
    _number(bursts, "--disconnect-trials", 5, "N", "mass hang-ups in a row on one server")
    quiet = p.add_argument_group("a quiet machine before each measured run")
    _number(quiet, "--quiet-cores", 0.25, "CORES", "at most this many cores used by others")
    _number(quiet, "--quiet-wait", 120.0, "S", "longest wait for that, seconds")
    return p


def _number(group: Any, flag: str, default: float | list[int], metavar: str, text: str) -> None:
    """A numeric flag whose type (and, for a list, nargs="+") its default gives."""
    many = isinstance(default, list)
    kind = type(default[0] if isinstance(default, list) else default)
    group.add_argument(
        flag, type=kind, nargs="+" if many else None, default=default, metavar=metavar, help=text
    )


def _choice(group: Any, flag: str, names: list[str], metavar: str, text: str) -> None:
    """One or more of `names`, all of them by default."""
    help_text = f"{text}, of {', '.join(names)} (default: all)"
    group.add_argument(
        flag, nargs="+", choices=names, default=list(names), metavar=metavar, help=help_text
    )


class _Help(argparse.RawDescriptionHelpFormatter):
    """The docstring as written; each flag's default after its help, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "(default" not in text:
            text += " (default: %(default)s)"
        return text


def _apply_quick(args: argparse.Namespace) -> None:
    vars(args).update(QUICK)
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
        speed drifts from minute to minute, and a limit measured once, at the start, can be
        far from the rounds it is compared with (docs/benchmarks.md, "Measuring through the
        drift")."""
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
        apart, and the machine's drift moves their ratios from run to run."""
        cells = results.summarise(self.results.get("closed", []))
        best: dict[str, list[int]] = {}  # peer -> the concurrencies where it was best
        for c in self.args.concurrency:
            if (peer := results.best_peer(cells, c)) is not None:
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
            start = results.median_rps(res["closed"], "gan-serve", 16, 32, "png") or 100.0
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


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.quick:
        _apply_quick(args)
    if not args.model.is_file():
        parser.error(f"no model file {args.model}")
    if bad := [kv for kv in args.service_env if "=" not in kv]:
        parser.error(f"--service-env wants KEY=VALUE, got {bad[0]}")
    try:
        wrk.wrk_binary()
    except RuntimeError as exc:
        parser.error(str(exc))
    raise_fd_limit()
    bench = Bench(args)
    try:
        result = bench.run()
    finally:
        shutil.rmtree(bench.scratch, ignore_errors=True)
    markdown = report.markdown(result)
    print("\n" + markdown)
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(result, indent=1) + "\n")
    bench.out.with_suffix(".md").write_text(markdown)
    print(f"wrote {bench.out} and {bench.out.with_suffix('.md')}; logs in {bench.logs}")
    return 0
