"""The probes beyond the closed rounds: two servers side by side, their runs alternated
(gan-serve against a peer, batching on against off); and on gan-serve alone, the highest
open-loop rate held, overload at a multiple of capacity (with /healthz probed throughout), a
burst of large requests, and clients that disconnect early. Each takes running servers and
returns a JSON-ready dict.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench import systems, wrk
from bench.httpclient import Answer, Connection, raw_request, timed
from bench.openloop import open_loop, percentiles
from bench.quiet import Quiet

Wait = Callable[[], Quiet]  # waits for a quiet machine and says what it saw
HOST = "127.0.0.1"


def _raw(server: systems.Server, n: int, fmt: str) -> bytes:
    request = server.system.request(n, fmt)
    return raw_request(request.method, request.path, HOST, request.body, request.headers)


def alternated(
    servers: tuple[systems.Server, systems.Server],
    wait: Wait,
    *,
    n: int,
    fmt: str,
    connections: int,
    pairs: int,
    duration_s: float,
    warmup_s: float,
    run_warmup_s: float,
) -> dict[str, Any]:
    """Closed-loop runs of two servers started side by side: `warmup_s` unmeasured each
    (none if 0), then `pairs` pairs of runs, the order swapped every pair, each run after a
    quiet wait and `run_warmup_s` unmeasured. The answer is the median of the pairs' ratios
    (first / second).

    A shared machine's speed drifts from one minute to the next (docs/benchmarks.md,
    "Measuring through the drift"); a ratio of two runs made minutes apart measures that
    drift as much as the servers, one of two runs made back to back does not. The server
    not being measured is idle."""
    first, second = servers
    names = (first.system.name, second.system.name)
    requests = {server.system.name: server.system.request(n, fmt) for server in servers}
    if warmup_s > 0:
        for server in servers:
            wrk.run(server.base_url, requests[server.system.name], connections, warmup_s)
    log: list[dict[str, Any]] = []
    for index in range(max(pairs, 1)):
        pair: dict[str, Any] = {}
        for server in servers if index % 2 == 0 else servers[::-1]:
            request = requests[server.system.name]
            quiet = wait()
            wrk.run(server.base_url, request, connections, run_warmup_s)
            result = wrk.run(server.base_url, request, connections, duration_s)
            pair[server.system.name] = {**result.as_dict(), "quiet": quiet.as_dict()}
        a, b = (pair[name]["req_per_s"] for name in names)
        pair["ratio"] = round(a / b, 3) if b else None
        log.append(pair)
    ratios = [p["ratio"] for p in log if p["ratio"] is not None]

    def median(name: str, value: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.median(value(p[name]) for p in log), 1)

    return {
        "systems": list(names),
        "n": n,
        "format": fmt,
        "connections": connections,
        "duration_s": duration_s,
        "ratio": round(statistics.median(ratios), 3) if ratios else None,
        "req_per_s": {name: median(name, lambda r: r["req_per_s"]) for name in names},
        "p99_ms": {name: median(name, lambda r: r["latency_ms"]["p99"]) for name in names},
        "non_2xx": {name: sum(p[name]["non_2xx"] for p in log) for name in names},
        "pairs": log,
    }


def open_loop_search(
    server: systems.Server,
    wait: Wait,
    *,
    n: int,
    fmt: str,
    start_rate: float,
    factor: float,
    steps: int,
    step_s: float,
    p99_ms: float,
) -> dict[str, Any]:
    """Step the arrival rate up by `factor` from `start_rate` until a step fails (a non-200
    answer or p99 over `p99_ms`); the answer is the last rate held. A failing first step
    halves the start, three times at most."""
    raw = _raw(server, n, fmt)
    log: list[dict[str, Any]] = []
    held: float | None = None
    rate, retries = start_rate, 0
    while len(log) < steps:
        quiet = wait()
        result = asyncio.run(open_loop(HOST, server.port, raw, rate, step_s))
        ok_latencies = result.latencies(True)
        p99 = (percentiles(ok_latencies) or {}).get("p99", float("inf"))
        passed = set(result.statuses) == {200} and p99 <= p99_ms
        log.append({**result.as_dict(), "held": passed, "quiet": quiet.as_dict()})
        if passed:
            held, rate = rate, rate * factor
        elif held is None and retries < 3:
            rate, retries = rate / 2, retries + 1
        else:
            break
    return {
        "n": n,
        "format": fmt,
        "p99_limit_ms": p99_ms,
        "step_s": step_s,
        "highest_rate_held": None if held is None else round(held, 1),
        "steps": log,
    }


def _probe_health(port: int, stop: threading.Event, every_s: float) -> list[Answer]:
    """GET /healthz every `every_s` on one keep-alive connection until `stop`. Runs in its
    own thread with blocking sockets, so the load generator's event loop, busy with
    hundreds of requests, does not delay the probe and inflate its latency."""
    answers: list[Answer] = []
    connection: http.client.HTTPConnection | None = None
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection = connection or http.client.HTTPConnection(HOST, port, timeout=30)
            connection.request("GET", "/healthz")
            answer = connection.getresponse()
            answer.read()
            status = answer.status
        except (OSError, http.client.HTTPException):
            status, connection = 0, None
        answers.append(Answer(status, time.perf_counter() - started))
        stop.wait(every_s)
    if connection is not None:
        connection.close()
    return answers


def overload(
    server: systems.Server,
    wait: Wait,
    *,
    n: int,
    fmt: str,
    multiple: float,
    capacity_s: float,
    overload_s: float,
    capacity_connections: int = 32,
) -> dict[str, Any]:
    """Capacity: closed-loop req/s at `capacity_connections`; then an open loop at
    `multiple` × that rate, with /healthz probed every 50 ms throughout."""
    request = server.system.request(n, fmt)
    quiet_capacity = wait()
    capacity = wrk.run(server.base_url, request, capacity_connections, capacity_s)
    rate = multiple * capacity.requests_per_s
    ok_per_s = capacity.ok / capacity.seconds if capacity.seconds else 0.0

    quiet = wait()
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        health_probe = pool.submit(_probe_health, server.port, stop, 0.05)
        try:
            result = asyncio.run(
                open_loop(HOST, server.port, _raw(server, n, fmt), rate, overload_s)
            )
        finally:
            stop.set()
        health = health_probe.result()
    goodput = len(result.latencies(True)) / result.seconds if result.seconds else 0.0
    return {
        "n": n,
        "format": fmt,
        "multiple": multiple,
        "capacity": {
            **capacity.as_dict(),
            "ok_per_s": round(ok_per_s, 1),
            "quiet": quiet_capacity.as_dict(),
        },
        "overload": {**result.as_dict(), "quiet": quiet.as_dict()},
        "goodput_ratio": round(goodput / ok_per_s, 3) if ok_per_s else None,
        "healthz": {
            "probes": len(health),
            "statuses": _count(health),
            "latency_ms": percentiles([a.seconds for a in health]),
        },
    }


def _count(answers: list[Answer]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())}


def burst(
    server: systems.Server,
    wait: Wait,
    *,
    clients: int,
    n: int,
    fmt: str,
    deadline_s: float,
) -> dict[str, Any]:
    """`clients` requests of n images sent at once; every answer timed; RSS sampled.

    The connections are opened first and the requests written together, as a load
    generator such as wrk does: each answer is timed from its own request's write, so a
    rejection's latency is the server's, not the time this Python client on the same cores
    takes to set up hundreds of TCP connections (timed apart, as `connect_ms`). Whether every
    request is answered by the deadline + 1 s is judged from the burst's start instead,
    connection set-up included."""
    raw = _raw(server, n, fmt)
    quiet = wait()
    rss_before = systems.rss_mb(server.pid)
    loop_cpu_before = systems.main_thread_cpu_ms(server.pid)
    peak = rss_before or 0.0

    async def one(connection: Connection | BaseException) -> Answer:
        if isinstance(connection, BaseException):  # it never opened
            return Answer(0, 0.0)
        return await timed(HOST, server.port, raw, deadline_s + 30, connection=connection)

    async def run() -> tuple[list[Answer], list[float], float]:
        nonlocal peak
        started = time.perf_counter()

        async def connect() -> Connection:
            connection = await Connection.open(HOST, server.port)
            connect_s.append(time.perf_counter() - started)
            return connection

        connect_s: list[float] = []
        connections = await asyncio.gather(
            *(connect() for _ in range(clients)), return_exceptions=True
        )
        sent = time.perf_counter()
        tasks = [asyncio.create_task(one(c)) for c in connections]
        while not all(t.done() for t in tasks):
            peak = max(peak, systems.rss_mb(server.pid) or 0.0)
            await asyncio.sleep(0.1)
        return [t.result() for t in tasks], connect_s, sent - started

    answers, connect_s, set_up_s = asyncio.run(run())
    loop_cpu_after = systems.main_thread_cpu_ms(server.pid)
    time.sleep(3)  # let the allocator give back what it will
    ok = [a.seconds for a in answers if a.status == 200]
    rejected = [a.seconds for a in answers if a.status not in (0, 200)]
    return {
        "clients": clients,
        "n": n,
        "format": fmt,
        "deadline_s": deadline_s,
        "statuses": _count(answers),
        "connect_ms": percentiles(connect_s),
        "answered_within_deadline_plus_1s": sum(
            1 for a in answers if a.status and set_up_s + a.seconds <= deadline_s + 1
        ),
        "ok_latency_ms": percentiles(ok),
        "rejected_latency_ms": percentiles(rejected),
        "all_latency_ms": percentiles([a.seconds for a in answers]),
        "rss_mb": {"before": rss_before, "peak": peak, "after": systems.rss_mb(server.pid)},
        # the server's main thread (its event loop) from before the connections to the last
        # answer: connection set-up, every request and answer, the accepted requests' replies
        "event_loop_cpu_ms": (
            None
            if loop_cpu_before is None or loop_cpu_after is None
            else round(loop_cpu_after - loop_cpu_before, 1)
        ),
        "quiet": quiet.as_dict(),
    }


def disconnects(
    server: systems.Server,
    wait: Wait,
    *,
    clients: int,
    n: int,
    fmt: str,
    after_s: float,
    settle_cap_s: float = 90.0,
) -> dict[str, Any]:
    """`clients` requests of n images that hang up after `after_s`; then one n = 16
    request, timed; the share of their images generated comes from
    gan_images_generated_total once it stops moving."""
    raw, follow_up = _raw(server, n, fmt), _raw(server, 16, fmt)
    name = "gan_images_generated_total"
    quiet = wait()
    before = systems.metric_total(server.base_url, name)

    async def run() -> Answer:
        connections = await asyncio.gather(
            *(Connection.open(HOST, server.port) for _ in range(clients))
        )
        await asyncio.gather(*(c.send(raw) for c in connections))
        await asyncio.sleep(after_s)
        for connection in connections:
            connection.close()
        return await timed(HOST, server.port, follow_up, 120)

    next_answer = asyncio.run(run())
    settle_started, last = time.monotonic(), -1.0
    while time.monotonic() - settle_started < settle_cap_s:
        now = systems.metric_total(server.base_url, name)
        if now == last:
            break
        last = now
        time.sleep(1.0)
    generated = last - before - (16 if next_answer.status == 200 else 0)
    return {
        "clients": clients,
        "n": n,
        "format": fmt,
        "disconnect_after_ms": after_s * 1000,
        "images_generated": generated,
        "share_generated": round(generated / (clients * n), 4),
        "next_request": {
            "status": next_answer.status,
            "latency_ms": round(next_answer.seconds * 1000, 2),
        },
        "quiet": quiet.as_dict(),
    }


def disconnect_trials(
    server: systems.Server, wait: Wait, *, trials: int, **kwargs: Any
) -> dict[str, Any]:
    """`disconnects` `trials` times in a row: where the gone clients' runs stand when they
    hang up varies from trial to trial, and so does the wait of the request after them. The
    summary is the worst trial's next request and every trial's images."""
    runs = [disconnects(server, wait, **kwargs) for _ in range(max(trials, 1))]
    worst = max(
        runs, key=lambda r: (r["next_request"]["status"] != 200, r["next_request"]["latency_ms"])
    )
    generated = sum(r["images_generated"] for r in runs)
    return {
        **{k: v for k, v in worst.items() if k != "quiet"},
        "trials": len(runs),
        "images_generated": generated,
        "share_generated": round(generated / sum(r["clients"] * r["n"] for r in runs), 4),
        "next_requests": [r["next_request"] for r in runs],
        "quiet": [r["quiet"] for r in runs],
    }
