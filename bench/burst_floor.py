"""The burst probe's own floor: the same probe against a server that does nothing but refuse.

    python -m bench burst-floor --bursts 4

A plain asyncio server (no HTTP framework, no model) answers every request with a fixed 503;
`probes.burst` sends it 300 requests at once, as it does to gan-serve. What the probe then
measures is its own cost, and the loopback's, on this machine: the part of a burst's
rejection latencies no server can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import probes, systems
from bench.quiet import wait_for_quiet
from bench.wrk import Request

REPO = Path(__file__).resolve().parent.parent
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\ncontent-length: 2\r\n\r\n{}"
)


# The refusing server as the probe sees it: the requests it is sent are gan-serve's.
REFUSER = systems.System(
    "burst-floor",
    "a plain asyncio server that answers every request with a fixed 503",
    None,
    "/",
    lambda n, fmt: Request(f"/samples?n={n}&format={fmt}"),
)


class _Refuser(asyncio.Protocol):
    """Answers each request head it reads with `_REFUSAL` (the probe's requests have no body)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(_REFUSAL)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Refuser, probes.HOST, port)
    await server.serve_forever()


def _wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((probes.HOST, port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--bursts", type=int, default=4, help="bursts, one after the other")
    p.add_argument("--clients", type=int, default=300, help="requests of n = 1024 per burst")
    p.add_argument(
        "--quiet-wait", type=float, default=60.0, help="longest wait for a quiet machine, s"
    )
    p.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve))
        return 0
    port = systems.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "burst-floor", "--serve", str(port)], cwd=REPO
    )
    server = systems.Server(REFUSER, process, port)
    try:
        _wait_listening(port)
        for burst in range(args.bursts):
            result = probes.burst(
                server,
                lambda: wait_for_quiet(0.25, args.quiet_wait),
                clients=args.clients,
                n=1024,
                fmt="png",
                deadline_s=30.0,
            )
            rejected = result["rejected_latency_ms"]
            print(
                f"burst {burst + 1}: {result['statuses']}; rejections p50 {rejected['p50']} / "
                f"max {rejected['max']} ms; connection set-up max {result['connect_ms']['max']} "
                f"ms; the server's loop {result['event_loop_cpu_ms']} ms of CPU",
                flush=True,
            )
    finally:
        process.kill()
        process.wait()
    return 0
