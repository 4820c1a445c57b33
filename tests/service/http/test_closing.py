"""Every answer that closes its connection reaches the client whole (service/http/connections.py,
the lingering close). On a reused keep-alive connection, with bytes of the request still on
their way, the server sends its answer, shuts its write side, reads and drops what still
comes, and closes only then: the kernel never answers those bytes with a reset that would
destroy the answer. Clients: httpx (AsyncClient, a 404 first), curl (two transfers on one
connection; curl retries a reset connection on a new one, so a second connect is a reset)
and raw sockets; for each closing status.

    python -m pytest tests/service/http/test_closing.py -q
    CLOSE_TRIES=100 python -m pytest tests/service/http/test_closing.py -q   # the figure
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.state import Status
from tests.service.conftest import Server, settings_for
from tests.support.gan_serve import poll

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

TRIES = int(os.environ.get("CLOSE_TRIES", "20"))  # per status and client; the figure: 100
TIMEOUT_S = 1.0  # the read timeout of the servers here (408)
KEY = "k-closing-0123456789"
BODY = b"b" * 60_000  # under GAN_MAX_BODY_BYTES (65536): read only where the app wants it
BIG_BODY = b"B" * 200_000  # over it: 413 before a byte of it is read
BIG_HEADER = "h" * 40_000  # over GAN_MAX_HEADER_BYTES (16384): 431
SLOW_BODY = b"s" * 200  # one byte per 20 ms for 1.5 read timeouts, then the answer: 408

Outcome = int | str  # the status a try got, or what went wrong instead


@dataclass(frozen=True)
class Case:
    """A request answered with `Connection: close` while bytes of it are still unread."""

    status: int
    server: str  # "plain", "busy" (every connection busy: 503) or "draining"
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    clients: tuple[str, ...] = ("httpx", "curl", "raw")


CASES = {
    # a header name with a space: the parser refuses it (httpx cannot send one)
    "400": Case(
        400, "plain", "POST", "/samples", (("Bad Header", "x"),), BIG_BODY, ("curl", "raw")
    ),
    # a second Host header: the edge refuses it without reading the body
    "400-edge": Case(400, "plain", "POST", "/samples", (("Host", "u"),), BODY, ("raw",)),
    "408": Case(408, "plain", "POST", "/samples", (), SLOW_BODY),
    "413": Case(413, "plain", "POST", "/samples", (), BIG_BODY),
    "431": Case(431, "plain", "GET", "/healthz", (("X-Big", BIG_HEADER),)),
    "503-overloaded": Case(503, "busy", "POST", "/samples", (), BODY),
    # while draining every answer closes: a 401 (no key) leaves its body unread
    "drain": Case(401, "draining", "POST", "/samples", (), BODY),
}


def cases(client: str) -> list[str]:
    return [name for name, case in CASES.items() if client in case.clients]


# -- the servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(model_dir: Path) -> Iterator[dict[str, Server]]:
    started = {
        "plain": Server(settings_for(model_dir, read_timeout_s=TIMEOUT_S)),
        # two connections, each holding a request that waits for a batch to fill (no CPU)
        "busy": Server(settings_for(model_dir, max_connections=2, max_delay_ms=120_000)),
        "draining": Server(settings_for(model_dir, api_keys=KEY)),
    }
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def server_of(
    servers: dict[str, Server], request: pytest.FixtureRequest
) -> Iterator[Callable[[Case], Server]]:
    """The server of a case; the busy one with both of its connections busy meanwhile."""
    held: list[socket.socket] = []

    def of(case: Case) -> Server:
        server = servers[case.server]
        if case.server == "busy" and not held:
            server.client.close()  # its idle keep-alive connection would make room
            for _ in range(2):
                sock = socket.create_connection(address(server), timeout=60)
                sock.sendall(b"POST /samples?n=1&format=npy HTTP/1.1\r\nHost: t\r\n\r\n")
                held.append(sock)
            protocol = server.server.config.http
            poll(lambda: len(protocol.live) == 2 and not protocol.evictable)
        return server

    yield of
    for sock in held:
        sock.close()


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def first_request(case: Case, server: Server) -> bool:
    """Before the closing request: whether there is a first one (the busy server's
    newcomers cannot have one); the draining server drains only after it, so the closing
    request rides a connection that was kept alive."""
    if case.server == "draining":
        server.app.state.service.set_status(Status.READY)
    return case.server != "busy"


def closing_request(case: Case, server: Server) -> None:
    if case.server == "draining":
        server.app.state.service.set_status(Status.DRAINING, "shutting down")


# -- the clients --------------------------------------------------------------------------------


async def httpx_try(case: Case, server: Server) -> Outcome:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        if first_request(case, server):
            assert (await client.get("/nope")).status_code == 404
        closing_request(case, server)

        async def trickle() -> AsyncIterator[bytes]:
            started = time.monotonic()  # the pace of a slow client, not a wait for the server
            for byte in case.body:
                yield bytes([byte])
                await asyncio.sleep(0.02)
                if time.monotonic() - started > 1.5 * TIMEOUT_S:
                    return

        content = trickle() if case.status == 408 else case.body
        try:
            response = await client.request(
                case.method, case.path, headers=list(case.headers), content=content or None
            )
        except httpx.TransportError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.headers.get("connection") != "close":
            return f"{response.status_code} without Connection: close"
        return response.status_code


def curl_try(case: Case, server: Server, scratch: Path) -> Outcome:
    body = scratch / "body"
    body.write_bytes(case.body)
    report = ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"]
    command = ["curl", "--max-time", "30"]
    reused = case.server == "plain"  # curl cannot let the server start draining in between
    if reused:
        command += [*report, f"{server.url}/nope", "--next"]
    command += [*report, "-X", case.method]
    for name, value in case.headers:
        command += ["-H", f"{name}: {value}"]
    if case.body:
        command += ["--data-binary", f"@{body}", "-H", "Content-Type: application/octet-stream"]
    if case.status == 408:
        command += ["--limit-rate", "50"]  # 50 bytes/s: 200 bytes take 4 s
    command.append(server.url + case.path)
    closing_request(case, server)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return f"curl exit {done.returncode}: {done.stderr.strip()}"
    status, connects = done.stdout.split()[-2:]
    if reused and connects != "0":
        return f"{status} after a reset and a new connection"
    return int(status)


def raw_try(case: Case, server: Server) -> Outcome:
    with socket.create_connection(address(server), timeout=30) as sock:
        if first_request(case, server):
            sock.sendall(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            assert response_of(sock).startswith(b"HTTP/1.1 404")
        closing_request(case, server)
        lines = [f"{case.method} {case.path} HTTP/1.1", "Host: t"]
        lines += [f"{name}: {value}" for name, value in case.headers]
        lines += [f"Content-Length: {len(case.body)}"] if case.body else []
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        try:
            if case.status == 408:
                sock.sendall(head)
                started = time.monotonic()
                for byte in case.body:  # the pace of a slow client, not a wait for the server
                    sock.sendall(bytes([byte]))
                    time.sleep(0.02)
                    if time.monotonic() - started > 1.5 * TIMEOUT_S:
                        break
            else:
                sock.sendall(head + case.body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
    head, _, body = answer.partition(b"\r\n\r\n")
    if b"connection: close" not in head.lower() or len(body) != content_length(head):
        return f"incomplete answer {answer[:40]!r}… ({len(answer)} bytes)"
    return int(answer.split()[1])


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return -1


def response_of(sock: socket.socket) -> bytes:
    """One response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    while len(body) < content_length(head):
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def run_tries(case: Case, one_try: Callable[[int], Outcome]) -> Counter[Outcome]:
    """TRIES tries: side by side for the slow-body case (each takes 1.5 read timeouts),
    one after the other for the others."""
    if case.status != 408:
        return Counter(one_try(index) for index in range(TRIES))
    with ThreadPoolExecutor(TRIES) as pool:
        return Counter(pool.map(one_try, range(TRIES)))


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", cases("httpx"))
def test_httpx_on_a_reused_connection_gets_every_closing_answer(
    name: str, server_of: Callable[[Case], Server]
) -> None:
    case = CASES[name]
    server = server_of(case)
    outcomes = run_tries(case, lambda _: asyncio.run(httpx_try(case, server)))
    assert outcomes == {case.status: TRIES}


@pytest.mark.parametrize("name", cases("curl"))
def test_curl_on_a_reused_connection_gets_every_closing_answer(
    name: str, server_of: Callable[[Case], Server], tmp_path: Path
) -> None:
    case = CASES[name]
    server = server_of(case)

    def one_try(index: int) -> Outcome:
        scratch = tmp_path / str(index)
        scratch.mkdir(exist_ok=True)
        return curl_try(case, server, scratch)

    assert run_tries(case, one_try) == {case.status: TRIES}


@pytest.mark.parametrize("name", cases("raw"))
def test_a_raw_socket_on_a_reused_connection_gets_every_closing_answer(
    name: str, server_of: Callable[[Case], Server]
) -> None:
    case = CASES[name]
    server = server_of(case)
    assert run_tries(case, lambda _: raw_try(case, server)) == {case.status: TRIES}
