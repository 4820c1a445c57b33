"""SIGKILL of one worker under load: what its requests get, what the others get, how soon the
service is whole again, and what the dead process leaves behind.

    python -m bench faults --model cheap --workers 2 --concurrency 64
    python -m bench faults --model cheap --out docs/bench-results/faults-DATE.json

gan-serve starts with `--workers` processes (GAN_REQUEST_TIMEOUT_S=`--deadline`); closed-loop
clients (`bench.httpclient`, one keep-alive connection each, a new one after a failure) send
`POST /samples?n=N&format=png` for `--before` seconds, then one worker is killed with SIGKILL
and the load goes on for `--after` seconds. Every request's start, end and status is kept.

- **Its requests**: those in flight at the kill; each must end (a status or a closed
  connection) by the deadline + 1 s — none may hang.
- **The others**: every request not in flight at the kill; at least 99 % must succeed.
- **Back**: from the kill until `/readyz` says every worker is ready again (the supervisor
  started a new one and its model is loaded and warm).
- **Leaks**: the service's open fds, threads and RSS (its whole process tree), and the
  entries of /dev/shm, before the load and after it; and after SIGTERM, that the parent's
  shared files are gone.

The service has no separate engine process (each worker runs its own; docs/service.md,
"Worker processes"), so there is no engine to kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import httpclient, sidebyside, systems
from bench.sidebyside import CHEAP

_POLL_S = 0.05


@dataclass(frozen=True)
class Outcome:
    started: float  # seconds since the load began
    ended: float
    status: int  # 0: no answer (connection lost)


async def _client(
    port: int, raw: bytes, began: float, stop_at: float, outcomes: list[Outcome]
) -> None:
    connection: httpclient.Connection | None = None
    while (now := time.perf_counter()) < stop_at:
        try:
            if connection is None or not connection.reusable:
                connection = await httpclient.Connection.open("127.0.0.1", port)
            status, _ = await connection.request(raw)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            status = 0
            if connection is not None:
                connection.close()
            connection = None
        outcomes.append(Outcome(now - began, time.perf_counter() - began, status))
    if connection is not None:
        connection.close()


async def _load(port: int, raw: bytes, clients: int, seconds: float) -> list[Outcome]:
    outcomes: list[Outcome] = []
    began = time.perf_counter()
    await asyncio.gather(
        *(_client(port, raw, began, began + seconds, outcomes) for _ in range(clients))
    )
    return outcomes


def _workers(server: systems.Server) -> dict[str, int]:
    body = systems.get_json(server.base_url + "/readyz")
    return {"ready": body.get("workers", {}).get("ready", 0), "total": body["workers"]["total"]}


def _kill_and_watch(
    server: systems.Server, victim: int, workers: int, timeout_s: float, back: list[float]
) -> None:
    """SIGKILL `victim`, then append to `back` the seconds until a new worker stands in its
    place and every worker is ready (`/readyz` 200 with `workers` processes)."""
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() - killed < timeout_s:
        pids = systems.descendants(server.pid)
        whole = victim not in pids and len(pids) == workers
        if whole and systems.status(server.base_url + "/readyz") == 200:
            back.append(time.monotonic() - killed)
            return
        time.sleep(_POLL_S)


def verdict(
    outcomes: list[Outcome], kill_at: float, deadline_s: float, back_s: float | None
) -> dict[str, Any]:
    """The figures and the pass/fail of each target."""
    caught = [o for o in outcomes if o.started <= kill_at < o.ended]
    others = [o for o in outcomes if not o.started <= kill_at < o.ended]
    ok = [o for o in others if o.status == 200]
    longest = max((o.ended - o.started for o in outcomes), default=0.0)
    share = len(ok) / len(others) if others else 0.0
    return {
        "requests": len(outcomes),
        "in_flight_at_kill": len(caught),
        "in_flight_statuses": dict(sorted(_count(caught).items())),
        "other_statuses": dict(sorted(_count(others).items())),
        "others_ok_share": round(share, 5),
        "longest_request_s": round(longest, 3),
        "median_request_ms": round(
            1000 * statistics.median(o.ended - o.started for o in outcomes), 2
        )
        if outcomes
        else None,
        "back_s": None if back_s is None else round(back_s, 2),
        "pass": {
            "no_request_past_deadline_plus_1s": longest <= deadline_s + 1.0,
            "others_at_least_99_percent_ok": share >= 0.99,
            "whole_again_within_5s": back_s is not None and back_s <= 5.0,
        },
    }


def _count(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = str(outcome.status) if outcome.status else "no answer"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default=CHEAP, help="an ONNX file, or `cheap` (default)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=64, help="clients (default 64)")
    parser.add_argument("--n", type=int, default=16, help="images per request (default 16)")
    parser.add_argument("--before", type=float, default=4, help="load before the kill, s")
    parser.add_argument("--after", type=float, default=8, help="load after the kill, s")
    parser.add_argument("--deadline", type=float, default=5, help="GAN_REQUEST_TIMEOUT_S")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    base = systems.SYSTEMS["gan-serve"]
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        model = sidebyside.model_path(args.model, scratch)
        env = (("GAN_WORKERS", str(args.workers)), ("GAN_REQUEST_TIMEOUT_S", str(args.deadline)))
        system = systems.System("gan-serve", "gan-serve", None, "/readyz", base.request, env=env)
        server = systems.start(system, model, "cpu", scratch / "logs", scratch)
        try:
            shared_roots = _shared_roots(server.pid)
            raw = httpclient.raw_request(
                "POST", f"/samples?n={args.n}&format=png", f"127.0.0.1:{server.port}"
            )
            asyncio.run(_load(server.port, raw, args.concurrency, 1.0))  # warm, unmeasured
            before = systems.usage(server.pid)
            victim = systems.descendants(server.pid)[0]
            back: list[float] = []
            watcher = threading.Timer(
                args.before, _kill_and_watch, (server, victim, args.workers, 30.0, back)
            )
            watcher.start()
            outcomes = asyncio.run(
                _load(server.port, raw, args.concurrency, args.before + args.after)
            )
            watcher.join()
            after = systems.usage(server.pid)
            workers = _workers(server)
        finally:
            server.stop()
        left = [str(root) for root in shared_roots if root.exists()]
    result = {
        "command": "python -m bench faults " + " ".join(argv or []),
        "model": args.model,
        **sidebyside.machine(),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "deadline_s": args.deadline,
        "killed_pid": victim,
        **verdict(outcomes, args.before, args.deadline, back[0] if back else None),
        "usage_before": asdict(before),
        "usage_after": asdict(after),
        "workers_after": workers,
        "shared_files_left_after_sigterm": left,
    }
    rss_growth = after.rss_mb - before.rss_mb
    result["pass"]["rss_back_within_50mb"] = rss_growth <= 50
    result["pass"]["no_fd_or_shm_leak"] = after.fds <= before.fds and after.shm_entries <= (
        before.shm_entries
    )
    result["pass"]["shared_files_removed"] = not left
    print(json.dumps(result, indent=1))
    sidebyside.save(result, args.out)
    return 0 if all(result["pass"].values()) else 1


def _shared_roots(pid: int) -> list[Path]:
    """The supervisor's shared folders (/tmp/gan-serve-*), read from its workers' settings."""
    roots = set()
    for member in systems.descendants(pid):
        try:
            environ = Path(f"/proc/{member}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"GANSERVE_WORKER_STATE="):
                roots.add(Path(item.split(b"=", 1)[1].decode()).parent)
    return sorted(roots)
