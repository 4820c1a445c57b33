"""`GAN_MAX_HEADER_BYTES` holds for every head on a connection, and for trailers
(service/http/connections.py): a head pipelined behind a request, sent in the same write, is
measured like the first; so are the trailers after a chunked body's last chunk; what the
parser holds of a connection stays within the limit, so a server's memory under clients that
send huge heads stays within a per-connection bound (docs/reliability.md). Both of uvicorn's
parsers: httptools (gan-serve's) and h11.

    python -m pytest tests/service/http/test_heads.py -q
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path

import pytest

from tests.service.conftest import Server, settings_for
from tests.support import onnx_models as models
from tests.support.gan_serve import Served, gan_serve

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

LIMIT = 16384  # GAN_MAX_HEADER_BYTES of the servers here (its default)
POST = b"POST /samples?n=1&format=npy HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, model_dir: Path) -> Iterator[Server]:
    started = Server(settings_for(model_dir, max_header_bytes=LIMIT), parser=request.param)
    yield started.start()
    started.stop()


def address(server: Server | str) -> tuple[str, int]:
    url = server if isinstance(server, str) else server.url
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def headers_of(size: int, prefix: bytes = b"X-H") -> bytes:
    """Header lines `X-Hn: v...\\r\\n` of about `size` bytes in all (100 bytes each)."""
    lines, total, index = [], 0, 0
    while total < size:
        line = prefix + f"{index}: ".encode() + b"v" * 90 + b"\r\n"
        lines.append(line)
        total += len(line)
        index += 1
    return b"".join(lines)


def get_of_size(size: int) -> bytes:
    """`GET /healthz` whose head (request line to blank line) is exactly `size` bytes, the
    last request on its connection."""
    start = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    pad = size - len(start) - len(b"X-Pad: \r\n") - 2
    return start + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"


def exchange(server: Server | str, data: bytes) -> list[int]:
    """Send `data` in one write (from a thread: the server may stop reading it) and return
    the statuses of the answers that come before the connection closes."""
    with socket.create_connection(address(server), timeout=30) as sock:

        def send() -> None:
            with suppress(OSError):  # cut off after its answer: what an abusive client earns
                sock.sendall(data)

        sender = threading.Thread(target=send)
        sender.start()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        sock.close()
        sender.join()
    return [int(part[:3]) for part in received.split(b"HTTP/1.1 ")[1:]]


def test_a_pipelined_head_of_73000_headers_gets_431_after_the_request_before_it(
    server: Server,
) -> None:
    huge = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers_of(8_000_000) + b"\r\n"
    assert huge.count(b"\r\n") > 73_000
    assert exchange(server, POST + huge) == [200, 431]


def test_trailers_over_the_limit_get_431(server: Server) -> None:
    chunked = (
        b"POST /samples?n=1&format=npy HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n" + headers_of(16_000_000, b"X-T") + b"\r\n"
    )
    assert exchange(server, chunked) == [431]


def test_trailers_within_the_limit_are_accepted_and_dropped(server: Server) -> None:
    chunked = (
        b"POST /samples?n=1&format=npy HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n0\r\n" + headers_of(4000, b"X-T") + b"\r\n"
    )
    assert exchange(server, chunked) == [200]


@pytest.mark.parametrize(("size", "status"), [(LIMIT, 200), (LIMIT + 1, 431)])
def test_the_limit_is_exact_for_the_first_and_a_pipelined_head(
    server: Server, size: int, status: int
) -> None:
    head = get_of_size(size)
    assert len(head) == size
    assert exchange(server, head) == [status]
    assert exchange(server, POST + head) == [200, status]


def test_many_small_pipelined_requests_are_all_answered_in_order(server: Server) -> None:
    many = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 200
    last = b"GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    assert exchange(server, many + last) == [200] * 200 + [404]


# -- memory: a real gan-serve against many clients sending huge heads -------------------------

# The test's size; docs/reliability.md has HEAD_CLIENTS=50 HEAD_MB=32.
CLIENTS = int(os.environ.get("HEAD_CLIENTS", "10"))
HEAD_BYTES = int(os.environ.get("HEAD_MB", "8")) * 1_000_000
BOUND_PER_CONNECTION = 2 << 20  # bytes of RSS growth allowed per connection (documented)


def peak_rss(pid: int) -> int:
    """VmHWM of `pid`: the most resident memory it has had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def gan_serve_tiny(tmp_path: Path, **env: str) -> AbstractContextManager[Served]:
    models.mlp_generator(tmp_path / "tiny.onnx")
    settings = {
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_MAX_BATCH": "4",  # few batch sizes to warm up
        "GAN_ACCESS_LOG": "false",
        "GAN_LOG_LEVEL": "warning",
    }
    return gan_serve({**settings, **env}, tmp_path / "server.log")


def side_by_side(served: Served, requests: list[bytes]) -> tuple[list[list[int]], int]:
    """Each of `requests` sent on its own connection at once: the statuses each got, and
    how much the server's peak RSS grew meanwhile."""
    url, pid = served.url, served.process.pid
    for _ in range(3):  # warm: the first requests allocate what every later one reuses
        exchange(url, POST + get_of_size(LIMIT))
    before = peak_rss(pid)
    results: list[list[int]] = [[] for _ in requests]

    def one(index: int) -> None:
        results[index] = exchange(url, requests[index])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, peak_rss(pid) - before


def test_clients_sending_huge_heads_leave_the_memory_within_the_bound(tmp_path: Path) -> None:
    huge = POST + b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers_of(HEAD_BYTES) + b"\r\n"
    trailers = (
        b"POST /samples?n=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + headers_of(HEAD_BYTES, b"X-T")
        + b"\r\n"
    )
    with gan_serve_tiny(tmp_path) as served:
        sent = [huge if i % 2 else trailers for i in range(CLIENTS)]
        results, grown = side_by_side(served, sent)
    growth = f"peak RSS +{grown / 2**20:.1f} MiB"
    print(f"\n{CLIENTS} clients x {HEAD_BYTES / 1e6:g} MB heads: {growth}")
    assert results == [[200, 431] if i % 2 else [431] for i in range(CLIENTS)]
    assert grown < CLIENTS * BOUND_PER_CONNECTION, growth


def test_pipelined_heads_at_the_limit_leave_the_memory_within_the_bound(tmp_path: Path) -> None:
    # 40 heads of 16 KB of 6-byte headers (the most Python objects per byte) pipelined behind
    # a request that waits 2 s for its batch: only MAX_PIPELINED of them are parsed meanwhile
    start = b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
    head = start + b"X: y\r\n" * ((LIMIT - len(start) - 2) // 6) + b"\r\n"
    pipelined = POST + head * 40 + get_of_size(100)
    with gan_serve_tiny(tmp_path, GAN_MAX_BATCH="16", GAN_MAX_DELAY_MS="2000") as served:
        results, grown = side_by_side(served, [pipelined] * CLIENTS)
    growth = f"peak RSS +{grown / 2**20:.1f} MiB"
    print(f"\n{CLIENTS} clients x 40 pipelined heads of {LIMIT} bytes: {growth}")
    assert results == [[200] * 42] * CLIENTS
    assert grown < CLIENTS * BOUND_PER_CONNECTION, growth
