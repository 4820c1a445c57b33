"""Open-loop load: requests sent at a fixed arrival rate whatever the server's answers.

A closed-loop client slows down with the server and so hides queueing; here request i is
due at start + i / rate and its latency counts from that moment (a request that waits for
a free connection is late, and the wait is part of its latency, as wrk2 counts it).
Connections are reused when idle and opened when none is, up to `max_connections`.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.httpclient import Answer, Connection


@dataclass
class OpenLoopResult:
    rate: float  # requests per second, as scheduled
    seconds: float  # how long requests were being sent
    answers: list[Answer] = field(default_factory=list)
    connections: int = 0  # most connections open at once
    client_cpu_s: float = 0.0  # this process's CPU time during the run
    errors: Counter[str] = field(default_factory=Counter)  # why answers had status 0

    @property
    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    def latencies(self, ok: bool) -> list[float]:
        return [a.seconds for a in self.answers if (200 <= a.status < 300) == ok and a.status]

    def as_dict(self) -> dict[str, Any]:
        ok, rejected = self.latencies(True), self.latencies(False)
        return {
            "rate": round(self.rate, 1),
            "seconds": round(self.seconds, 2),
            "sent": len(self.answers),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "goodput_req_per_s": round(len(ok) / self.seconds, 1) if self.seconds else 0.0,
            "ok_latency_ms": percentiles(ok),
            "rejected_latency_ms": percentiles(rejected),
            "connections": self.connections,
            "client_cpu_s": round(self.client_cpu_s, 2),
            "errors": dict(self.errors),
        }


def percentiles(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99]) * 1000
    return {
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(max(seconds) * 1000, 2),
    }


def raise_fd_limit() -> None:
    """Many concurrent connections need many file descriptors: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def open_loop(
    host: str,
    port: int,
    raw: bytes,
    rate: float,
    seconds: float,
    *,
    timeout_s: float = 60.0,
    max_connections: int = 4096,
) -> OpenLoopResult:
    """Send `raw` at `rate` per second for `seconds`; wait for every answer (or timeout)."""
    idle: list[Connection] = []
    slots = asyncio.Semaphore(max_connections)
    result = OpenLoopResult(rate, seconds)
    open_now = 0

    async def one(due: float) -> None:
        nonlocal open_now
        async with slots:
            connection = idle.pop() if idle else None
            reused = connection is not None
            try:
                async with asyncio.timeout(timeout_s):
                    if connection is None:
                        connection = await Connection.open(host, port)
                        open_now += 1
                        result.connections = max(result.connections, open_now)
                    status, _ = await connection.request(raw)
            except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
                status = 0
                result.errors[f"{type(exc).__name__}{' (reused)' if reused else ''}"] += 1
            answer = Answer(status, time.perf_counter() - due)
            result.answers.append(answer)
            if connection is not None:
                if status and connection.reusable:
                    idle.append(connection)
                else:
                    connection.close()
                    open_now -= 1

    cpu_before = time.process_time()
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.01
    total = max(1, round(rate * seconds))
    for i in range(total):
        due = start + i / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(due)))
    result.seconds = time.perf_counter() - start
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    result.client_cpu_s = time.process_time() - cpu_before
    return result
