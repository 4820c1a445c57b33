"""Closed-loop gRPC load from `h2load` (Debian's `nghttp2-client`): one pre-framed message
POSTed again and again over HTTP/2 cleartext, as `wrk` does for HTTP/1.1 (bench/wrk.py).

Each of `clients` connections keeps one stream in flight (`-m 1`), so the concurrency is the
number of connections, as with wrk. h2load prints totals but no percentiles: its per-request
log (`--log-file`: start, status, microseconds to the end of the answer) gives them.

h2load counts HTTP statuses, and a gRPC error travels as HTTP 200 with a `grpc-status`
trailer and no message. So `run` also reports the DATA bytes received, and the caller that
knows the length of a good answer's frame counts the good answers from them
(`GrpcResult.good`).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


def frame(message: bytes) -> bytes:
    """One gRPC message on the wire: not compressed (0), its length (4 bytes, big-endian)."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


@dataclass(frozen=True)
class GrpcResult:
    requests: int  # answered streams (h2load's "succeeded": HTTP 2xx)
    seconds: float
    data_bytes: int  # DATA frame payload received, over every stream
    latency_ms: dict[str, float]  # p50, p99, max, mean over the logged answers

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def good(self, answer_frame_bytes: int) -> int:
        """Answers that carried a whole message of the good answer's length (errors carry
        none); every good answer to the same request has the same length."""
        return min(self.requests, self.data_bytes // answer_frame_bytes)


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")
_TRAFFIC = re.compile(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers.*?\((\d+)\) data")


def parse(stdout: str, log: str) -> GrpcResult:
    """h2load's summary and its per-request log."""
    finished, requests, traffic = (
        pattern.search(stdout) for pattern in (_FINISHED, _REQUESTS, _TRAFFIC)
    )
    if not (finished and requests and traffic):
        raise ValueError(f"unexpected h2load output:\n{stdout[-2000:]}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    durations = sorted(
        int(fields[2]) / 1000
        for line in log.splitlines()
        if len(fields := line.split("\t")) >= 3 and fields[1].startswith("2")
    )
    latency = {"p50": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    if durations:
        last = len(durations) - 1
        latency = {
            "p50": durations[round(0.50 * last)],
            "p99": durations[round(0.99 * last)],
            "max": durations[-1],
            "mean": round(statistics.fmean(durations), 3),
        }
    return GrpcResult(
        requests=int(requests.group(4)),
        seconds=seconds,
        data_bytes=int(traffic.group(3)),
        latency_ms=latency,
    )


def h2load_binary() -> str:
    found = shutil.which("h2load")
    if found is None:
        raise RuntimeError(
            "h2load not found: install Debian's package `nghttp2-client` (apt-get install "
            "nghttp2-client)"
        )
    return found


def run(
    url: str,
    body: bytes,
    clients: int,
    duration_s: float,
    headers: tuple[str, ...] = GRPC_HEADERS,
) -> GrpcResult:
    """`clients` closed-loop HTTP/2 connections POSTing `body` to `url` (http://: cleartext
    with prior knowledge) for `duration_s` seconds, from one h2load thread."""
    with tempfile.TemporaryDirectory() as tmp:
        data, log = Path(tmp) / "body", Path(tmp) / "requests.log"
        data.write_bytes(body)
        command = [
            h2load_binary(),
            f"--clients={clients}",
            "--threads=1",
            "--max-concurrent-streams=1",
            f"--duration={max(1, round(duration_s))}",
            f"--data={data}",
            f"--log-file={log}",
            *(f"--header={header}" for header in headers),
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return parse(done.stdout, log.read_text() if log.exists() else "")
