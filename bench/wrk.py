"""Closed-loop load from `wrk` on one URL, as every closed-loop run of the benchmarks makes it.

    python -m bench wrk "http://127.0.0.1:8000/samples?n=16" --connections 8 --duration 5

Each connection sends its next request as soon as the last answer arrives. A generated Lua
script sets the request (method, body, headers), counts answers by status in each wrk thread
and, in wrk's `done()` hook, prints one JSON line with the totals and latency percentiles,
which `parse` reads back.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "BENCH_WRK_JSON "

# Status counts live in a global of each thread's Lua state (thread:get reads globals).
_LUA = """-- written by bench/wrk.py
wrk.method = "%(method)s"
wrk.body = "%(body)s"
%(headers)s
codes = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("codes")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local statuses = {}
  for status, count in pairs(merged) do
    table.insert(statuses, string.format('"%%d":%%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},' ..
    '"statuses":{%%s},"latency_us":{"p50":%%d,"p90":%%d,"p95":%%d,"p99":%%d,' ..
    '"max":%%d,"mean":%%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(statuses, ","),
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class Request:
    """One HTTP request, sent again and again; `path` includes the query."""

    path: str
    method: str = "POST"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def lua_script(request: Request) -> str:
    # Decimal escapes keep any body byte valid inside a Lua string literal.
    body = "".join(f"\\{byte}" for byte in request.body)
    headers = "\n".join(
        f'wrk.headers["{name}"] = "{value}"' for name, value in request.headers.items()
    )
    return _LUA % {"method": request.method, "body": body, "headers": headers, "marker": MARKER}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]  # p50, p90, p95, p99, max, mean: over every answer

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        return self.requests - self.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.requests_per_s, 1),
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "socket_errors": self.socket_errors,
            "latency_ms": self.latency_ms,
        }


def parse(stdout: str) -> WrkResult:
    """Read the JSON line that the script's done() hook printed among wrk's own output."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line.removeprefix(MARKER))
            break
    else:
        raise ValueError(f"no {MARKER.strip()} line in wrk's output:\n{stdout[-2000:]}")
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        statuses={int(k): v for k, v in data["statuses"].items()},
        socket_errors={k: v for k, v in data["errors"].items() if k != "status"},
        latency_ms={k: round(v / 1000, 3) for k, v in data["latency_us"].items()},
    )


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk not found: install Debian's package `wrk` (apt-get install wrk)")
    return found


def run(
    base_url: str,
    request: Request,
    connections: int,
    duration_s: float,
    *,
    threads: int = 1,
    timeout_s: float = 60.0,
) -> WrkResult:
    """`connections` closed-loop connections for `duration_s` seconds; one wrk thread by
    default, which drives thousands of requests per second while leaving the cores to the
    server under test."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(lua_script(request))
        command = [
            wrk_binary(),
            f"--threads={max(1, min(threads, connections))}",
            f"--connections={connections}",
            f"--duration={max(1, round(duration_s))}s",
            f"--timeout={round(timeout_s)}s",
            f"--script={script}",
            base_url.rstrip("/") + request.path,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return parse(done.stdout)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="closed-loop POSTs with wrk to one URL; prints the JSON result"
    )
    parser.add_argument("url", help="full URL, e.g. http://127.0.0.1:8000/samples?n=16")
    parser.add_argument("--connections", type=int, default=8, help="connections, each closed-loop")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--body", default="", help="request body")
    args = parser.parse_args(argv)
    scheme, _, rest = args.url.partition("://")
    host, slash, path = rest.partition("/")
    result = run(
        f"{scheme}://{host}",
        Request("/" + path if slash else "/", body=args.body.encode()),
        args.connections,
        args.duration,
    )
    print(json.dumps(result.as_dict(), indent=1))
    return 0
