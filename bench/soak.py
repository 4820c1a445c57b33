"""A soak with faults: mixed traffic and misbehaving clients for minutes, then SIGHUP and SIGTERM.

On the shipped model; JSON and a PNG plot of the server every 10 s, a verdict per criterion.

    python -m bench soak --duration 1800 --out docs/soak/soak-2026-12-05.json
    python -m bench soak --duration 60 --clients 2 --workers 2 --out /tmp/soak.json

gan-serve runs the shipped model with API keys and a per-key rate limit; the soak drives,
all at once: closed-loop clients asking every format and size (/samples by query and JSON
body, /interpolate, /models, the probes), bursts on new connections, clients that hang up
mid-head, mid-work or mid-answer, slowloris heads and bodies, idle keep-alive and silent
connections, the bad-input corpus (bench/soak_inputs.py), and two keys driven open-loop at
their rate and at three times it. Every `--interval` seconds it records the server's RSS,
open fds and threads (whole process tree), queue depth, the counts so far and the interval's
p99 (bench/soak_record.py). At the end, with light traffic in flight, SIGHUP (which drains
like SIGTERM), then SIGTERM on a server started again.

Pass: no 5xx but 503/504 naming their reason; no request lost (each gets a status, or a
clean refusal: a connection refused before a byte was sent); bad input never served; RSS and
fds flat from minute 5 to the end (drift < 20 MB, < 10 fds; judged on runs of 10 minutes or
more); per key, images served in any window ≤ rate × window + burst; SIGHUP and SIGTERM
each drain, lose nothing in flight, leave no process behind and exit 0. Exit status 1 when a
judged criterion fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import soak_record, soak_sockets, soak_traffic, systems
from bench.soak_traffic import Ledger, Target

RATE, BURST, MAX_SAMPLES = 100.0, 256, 256  # images/s per key, bucket, largest n
AT, OVER = "soak-at", "soak-over"  # driven at the rate, and at three times it
# The rest of the traffic, spread over enough keys that its rate limits rarely bind.
TRAFFIC_KEYS = [f"soak-traffic-{i}" for i in range(24)]
SERVE_TIMEOUT_S = 30.0  # GAN_REQUEST_TIMEOUT_S (the default)


def server_env(workers: int) -> dict[str, str]:
    return {
        "GAN_WORKERS": str(workers),
        "GAN_API_KEYS": ",".join([AT, OVER, *TRAFFIC_KEYS]),
        "GAN_RATE_LIMIT_IMAGES_PER_S": str(RATE),
        "GAN_RATE_LIMIT_BURST": str(BURST),
        "GAN_MAX_SAMPLES": str(MAX_SAMPLES),
        "GAN_REQUEST_TIMEOUT_S": str(SERVE_TIMEOUT_S),
    }


def start(args: argparse.Namespace, scratch: Path) -> systems.Server:
    """gan-serve with SIGHUP's default disposition, as a service manager starts it: a soak
    run under `nohup` ignores SIGHUP, and a child inherits an ignored signal."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        return _start(args, scratch)
    finally:
        signal.signal(signal.SIGHUP, previous)


def _start(args: argparse.Namespace, scratch: Path) -> systems.Server:
    system = systems.SYSTEMS["gan-serve"]
    return systems.start(
        system, args.model, "cpu", scratch / "logs", scratch, server_env(args.workers)
    )


def target_of(server: systems.Server) -> Target:
    return Target("127.0.0.1", server.port, timeout_s=SERVE_TIMEOUT_S + 15)


async def drive(server: systems.Server, args: argparse.Namespace, ledger: Ledger) -> list[Any]:
    """The mixed traffic for `args.duration` seconds, sampled every `args.interval`."""
    target, stop, t, s = target_of(server), asyncio.Event(), soak_traffic, soak_sockets
    clients = [
        *(
            t.normal(target, ledger, stop, TRAFFIC_KEYS, MAX_SAMPLES, seed)
            for seed in range(args.clients)
        ),
        t.bursts(target, ledger, stop, TRAFFIC_KEYS, size=8 * args.clients, every_s=20),
        t.keyed(target, ledger, stop, "at", AT, 10, every_s=10 / RATE),
        t.keyed(target, ledger, stop, "over", OVER, 10, every_s=10 / (3 * RATE)),
        s.bad_input(target, ledger, stop, TRAFFIC_KEYS[0], every_s=0.25),
        s.hang_ups(target, ledger, stop, TRAFFIC_KEYS[1], every_s=0.5),
        *(s.slowloris(target, ledger, stop, TRAFFIC_KEYS[2], seed) for seed in range(2)),
        *(s.idle(target, ledger, stop, seed) for seed in range(3)),
    ]
    tasks = [asyncio.create_task(c) for c in clients]
    samples, started, since = [], time.monotonic(), 0
    for tick in range(1, int(args.duration / args.interval) + 1):
        await asyncio.sleep(started + tick * args.interval - time.monotonic())  # the clock
        upto = len(ledger.records)
        row = await asyncio.to_thread(
            soak_record.sample, server.pid, server.base_url, ledger, since, tick * args.interval
        )
        samples.append(row)
        since = upto
        print(json.dumps(row), flush=True)
    stop.set()
    await asyncio.gather(*tasks)
    return samples


def _wait(server: systems.Server, timeout_s: float) -> int | None:
    """The process's exit status, None while it still runs after `timeout_s`."""
    try:
        return server.process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None


async def signalled(server: systems.Server, sig: signal.Signals, watch_s: float) -> dict[str, Any]:
    """Send `sig` with two clients' requests in flight; watch the process for `watch_s`."""
    ledger, stop = Ledger(), asyncio.Event()
    target = target_of(server)
    tasks = [
        asyncio.create_task(
            soak_traffic.normal(target, ledger, stop, TRAFFIC_KEYS, 64, 100 + i, fresh=True)
        )
        for i in range(2)
    ]
    while sum(r.outcome == "ok" for r in ledger.records) < 4:  # traffic flowing: answers seen
        await asyncio.sleep(0.05)
    tree = [server.pid, *systems.descendants(server.pid)]
    sent = time.monotonic()
    os.kill(server.pid, sig)
    exited = asyncio.ensure_future(asyncio.to_thread(_wait, server, watch_s))
    # The clients stop at the first answer that says the drain began: what they sent before
    # is in flight and judged; a new connection opened as the process closes its socket
    # would meet a reset that no server can avoid (the kernel's backlog of a closing socket).
    while not exited.done() and not any(r.status == 503 and r.sent >= sent for r in ledger.records):
        await asyncio.sleep(0.01)
    stop.set()
    code = await exited
    seconds = round(time.monotonic() - sent, 2)
    # whoever still listens on the port (with GAN_WORKERS > 1, orphaned workers may)
    alive = systems.status(server.base_url + "/readyz") == 200
    await asyncio.gather(*tasks)
    left = [pid for pid in tree[1:] if Path(f"/proc/{pid}").exists()] if code is not None else []
    found = soak_record.counts(ledger.records)
    lost = [r.reason for r in ledger.records if r.outcome == "lost"]
    return {
        "exit": code,
        "seconds": seconds,
        "serving_after": alive,
        "tree_left_running": len(left),
        **found,
        "lost_reasons": dict(Counter(lost)),
    }


def describe_sighup(hup: dict[str, Any]) -> str:
    if hup["exit"] is None:
        return "still serving" if hup["serving_after"] else "running but not ready"
    if hup["exit"] == 0 and not hup["lost"] and not hup["tree_left_running"]:
        return f"drained: exit status 0, nothing lost, {hup['seconds']} s"
    how = f"signal {-hup['exit']}" if hup["exit"] < 0 else f"exit status {hup['exit']}"
    orphans = ""
    if hup["tree_left_running"]:
        serving = "still serving the port" if hup["serving_after"] else "not serving"
        orphans = f", {hup['tree_left_running']} worker(s) left running, {serving}"
    return (
        f"ended at once ({how}) without a drain; {hup['lost']} request(s) in flight lost{orphans}"
    )


def summarise(args: argparse.Namespace, samples: list[Any], ledger: Ledger) -> dict[str, Any]:
    records = ledger.records
    judge_drift = args.duration >= 600
    warm, span = (300.0, 60.0) if judge_drift else (args.duration / 3, args.duration / 6)
    by_key: dict[str, list[soak_traffic.Record]] = {}
    for record in records:
        if record.key is not None and record.images:
            by_key.setdefault(record.key, []).append(record)
    reasons: dict[str, Counter[str]] = {}
    for record in records:
        if record.outcome in ("refused", "failed", "lost"):
            reasons.setdefault(record.outcome, Counter())[f"{record.status} {record.reason}"] += 1
    kinds = sorted({r.kind for r in records})
    return {
        "totals": soak_record.counts(records),
        "by_kind": {k: soak_record.counts([r for r in records if r.kind == k]) for k in kinds},
        "reasons": {k: dict(v.most_common()) for k, v in reasons.items()},
        "unexplained_5xx": sum(r.outcome == "failed" and r.status >= 500 for r in records),
        "bad_input_served": sum(r.kind == "bad" and 200 <= r.status < 300 for r in records),
        "drift": {name: soak_record.drift(samples, name, warm, span) for name in ("rss_mb", "fds")},
        "drift_window_s": {"warm": warm, "span": span, "judged": judge_drift},
        "rate_limit": {
            "rate": RATE,
            "burst": BURST,
            "excess_images": {
                key: round(soak_record.excess_over_rate(rs, RATE), 1)
                for key, rs in sorted(by_key.items())
            },
            "offered_images": {k: sum(r.images for r in rs) for k, rs in sorted(by_key.items())},
            "served_images": {
                k: sum(r.images for r in rs if r.outcome == "ok")
                for k, rs in sorted(by_key.items())
            },
        },
    }


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=1800, help="seconds of traffic")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples")
    parser.add_argument("--clients", type=int, default=4, help="closed-loop normal clients")
    parser.add_argument("--workers", type=int, default=1, help="GAN_WORKERS (default 1)")
    parser.add_argument(
        "--model", type=Path, default=Path("models/fashion-cdcgan.onnx"), help="generator served"
    )
    today = datetime.date.today().isoformat()
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(f"docs/soak/soak-{today}.json"),
        help="the JSON; the plot goes beside it as .png",
    )
    return parser


async def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    ledger = Ledger()
    server = start(args, scratch)
    try:
        samples = await drive(server, args, ledger)
        result: dict[str, Any] = {"samples": samples, **summarise(args, samples, ledger)}
        hup = await signalled(server, signal.SIGHUP, watch_s=3)
        result["sighup"] = {**hup, "what_happened": describe_sighup(hup)}
        if hup["exit"] is not None:
            server.stop()  # what SIGHUP left behind
            server = start(args, scratch)
        drain_s = SERVE_TIMEOUT_S + 15
        result["sigterm"] = {
            **await signalled(server, signal.SIGTERM, watch_s=drain_s),
            "restarted_after_sighup": hup["exit"] is not None,
        }
    finally:
        server.stop()
    return result


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        result = asyncio.run(run(args, Path(scratch)))
    result = {
        "command": " ".join(
            ["python -m bench soak", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": str(args.model),
        "workers": args.workers,
        "duration_s": args.duration,
        "interval_s": args.interval,
        "clients": args.clients,
        "cores": os.cpu_count(),
        "rate_limit_keys": {"at": AT, "over": OVER, "traffic": TRAFFIC_KEYS},
        **result,
    }
    result["verdicts"] = soak_record.verdicts(result, judge_drift=args.duration >= 600)
    result["passed"] = all(v["verdict"] != "FAIL" for v in result["verdicts"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    title = f"gan-serve soak, {args.duration:g} s, GAN_WORKERS={args.workers}: {result['date']}"
    soak_record.plot(result["samples"], title, args.out.with_suffix(".png"))
    for v in result["verdicts"]:
        print(f"{v['verdict']:>5}  {v['criterion']}: {v['measured']}")
    print(f"{'PASS' if result['passed'] else 'FAIL'}; {args.out} and its .png", flush=True)
    return 0 if result["passed"] else 1
