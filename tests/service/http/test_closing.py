"""Every answer that closes its connection reaches the client whole (service/http/connections.py,
the lingering close): on a reused keep-alive connection, with bytes of the request still on
their way, the server sends the answer, shuts its write side, reads and drops what still
comes, and closes only then, so the kernel never answers those bytes with a reset that would
destroy the answer. Clients: httpx (AsyncClient, one 404 first), curl (two transfers on one
connection) and raw sockets, for each closing status.

    python -m pytest tests/service/http/test_closing.py -q
    CLOSE_TRIES=100 python -m pytest tests/service/http/test_closing.py -q   # the figure
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.state import Status
from tests.service.conftest import Server, settings_for
from tests.support.gan_serve import poll

TRIES = int(os.environ.get("CLOSE_TRIES", "20"))  # per status and client; the figure: 100
TIMEOUT_S = 1.0  # the read timeout of these servers (408)
KEY = "k-closing-0123456789"
BODY = b"b" * 60_000  # under GAN_MAX_BODY_BYTES (65536): read only if the app wants it
BIG_BODY = b"B" * 200_000  # over it: 413 before a byte is read
BIG_HEADER = "h" * 40_000  # over GAN_MAX_HEADER_BYTES (16384): 431


@dataclass(frozen=True)
class Case:
    """A request that is answered with `Connection: close` while bytes of it are unread."""

    status: int
    server: str  # which server of `servers` answers it
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    raw: bytes = b""  # the raw-socket form, when it differs from method + path + headers + body
    slow: bool = False  # the body trickles in, slower than the read timeout


CASES = {
    "400": Case(  # a second Host header: refused by the edge, its body never read
        400, "plain", "POST", "/samples", (("Host", "t"), ("Host", "u")), BODY
    ),
    "400-parser": Case(  # malformed: refused by the parser with the rest still in the pipe
        400,
        "plain",
        "GET",
        "/healthz",
        raw=b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n" + BIG_BODY,
    ),
    "408": Case(408, "plain", "POST", "/samples", (), b"s" * 200, slow=True),
    "413": Case(413, "plain", "POST", "/samples", (), BIG_BODY),
    "431": Case(431, "plain", "GET", "/healthz", (("X-Big", BIG_HEADER),)),
    "503-overloaded": Case(503, "busy", "POST", "/samples", (), BODY),
    "drain": Case(401, "draining", "POST", "/samples", (), BODY),  # no key; draining: close
}


def raw_request(case: Case, host: str) -> bytes:
    if case.raw:
        return case.raw
    names = {name.lower() for name, _ in case.headers}
    lines = [f"{case.method} {case.path} HTTP/1.1"]
    lines += [] if "host" in names else [f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in case.headers]
    if case.body:
        lines.append(f"Content-Length: {len(case.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + case.body


# -- the servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(model_dir: Path) -> Iterator[dict[str, Server]]:
    started = {
        "plain": Server(settings_for(model_dir, read_timeout_s=TIMEOUT_S)),
        # two connections, each with a request waiting for a batch to fill (no CPU spent):
        # every newcomer gets 503
        "busy": Server(settings_for(model_dir, max_connections=2, max_delay_ms=60_000)),
        "draining": Server(settings_for(model_dir, api_keys=KEY)),
    }
    for server in started.values():
        server.start()
    started["draining"].app.state.service.set_status(Status.DRAINING, "shutting down")
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def busy(servers: dict[str, Server]) -> Iterator[None]:
    """Both connections of the "busy" server hold a request in flight (waiting for a batch)."""
    server = servers["busy"]
    server.client.close()  # its idle keep-alive connection would be the one to make room
    held = [socket.create_connection(address(server), timeout=60) for _ in range(2)]
    for sock in held:
        sock.sendall(b"POST /samples?n=1&format=npy HTTP/1.1\r\nHost: t\r\n\r\n")
    protocol = server.server.config.http
    poll(lambda: len(protocol.live) == 2 and not protocol.evictable)
    yield
    for sock in held:
        sock.close()


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def prepared(case_name: str, servers: dict[str, Server], request: pytest.FixtureRequest
) -> tuple[Case, Server]:
    case = CASES[case_name]
    if case.server == "busy":
        request.getfixturevalue("busy")
    return case, servers[case.server]


# -- the clients: each try returns the status it got, or what went wrong instead ------------


async def httpx_try(case: Case, server: Server) -> int | str:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        if case.server != "busy":  # the busy server's newcomers cannot have a first answer
            assert (await client.get("/nope")).status_code == 404  # the connection is reused

        async def trickle() -> AsyncIterator[bytes]:
            started = time.monotonic()  # one byte per 20 ms for twice the read timeout:
            for byte in case.body:  # the pace of a slow client, not a wait for the server
                yield bytes([byte])
                await asyncio.sleep(0.02)
                if time.monotonic() - started > 2 * TIMEOUT_S:
                    return

        content = trickle() if case.slow else case.body
        headers = [(name, value) for name, value in case.headers if name.lower() != "host"]
        if any(name.lower() == "host" for name, _ in case.headers):
            headers = list(case.headers)
        try:
            response = await client.request(
                case.method, case.path, headers=headers, content=content or None
            )
        except httpx.TransportError as exc:
            return type(exc).__name__
        if response.headers.get("connection") != "close":
            return f"{response.status_code} without Connection: close"
        return response.status_code


def curl_try(case: Case, server: Server, scratch: Path) -> int | str:
    body = scratch / "body"
    body.write_bytes(case.body)
    first = [] if case.server == "busy" else [f"{server.url}/nope", "-o", "/dev/null", "--next"]
    command = ["curl", "-sS", "--max-time", "30", "-w", "%{http_code} %{num_connects}\n"]
    command += first + ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"]
    command += ["-X", case.method]
    for name, value in case.headers:
        command += ["-H", f"{name}: {value}"]
    if case.body:
        command += ["--data-binary", f"@{body}", "-H", "Content-Type: application/octet-stream"]
        if case.slow:
            command += ["--limit-rate", "50"]  # 50 bytes/s: 200 bytes take 4 s
    command.append(server.url + case.path)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    lines = done.stdout.split()
    if done.returncode != 0:
        return f"curl exit {done.returncode}: {done.stderr.strip()}"
    if case.server != "busy":
        assert lines[1:4:2] == ["1", "0"], done.stdout  # one connection, reused
    return int(lines[-2])


def raw_try(case: Case, server: Server) -> int | str:
    with socket.create_connection(address(server), timeout=30) as sock:
        if case.server != "busy":
            sock.sendall(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 404")
        data = raw_request(case, "t")
        try:
            if case.slow:  # the head, then one byte per 20 ms for twice the read timeout
                head, _, body = data.partition(b"\r\n\r\n")
                sock.sendall(head + b"\r\n\r\n")
                started = time.monotonic()
                for byte in body:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.02)  # the slow client's pace, not a wait for the server
                    if time.monotonic() - started > 2 * TIMEOUT_S:
                        break
            else:
                sock.sendall(data)
            answer = read_until_closed(sock)
        except OSError as exc:
            return type(exc).__name__
    if b"\r\n\r\n" not in answer or b"connection: close" not in answer.lower():
        return f"incomplete answer {answer[:60]!r}"
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    if len(body) != length:
        return f"body of {len(body)} of {length} bytes"
    return int(answer.split()[1])


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def outcomes(results: list[int | str]) -> Counter[int | str]:
    return Counter(results)


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case_name", [name for name in CASES if not CASES[name].raw])
def test_httpx_on_a_reused_connection_gets_every_closing_answer(
    case_name: str, servers: dict[str, Server], request: pytest.FixtureRequest
) -> None:
    case, server = prepared(case_name, servers, request)

    async def all_tries() -> list[int | str]:
        if case.slow:  # each try takes twice the read timeout: run them side by side
            return list(await asyncio.gather(*(httpx_try(case, server) for _ in range(TRIES))))
        return [await httpx_try(case, server) for _ in range(TRIES)]

    assert outcomes(asyncio.run(all_tries())) == {case.status: TRIES}


@pytest.mark.parametrize("case_name", [name for name in CASES if not CASES[name].raw])
def test_curl_on_a_reused_connection_gets_every_closing_answer(
    case_name: str, servers: dict[str, Server], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    case, server = prepared(case_name, servers, request)
    if case.slow:
        results: list[int | str] = []
        threads = [
            threading.Thread(target=lambda i=i: results.append(curl_try(case, server, mkdir(tmp_path / str(i)))))
            for i in range(TRIES)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        results = [curl_try(case, server, tmp_path) for _ in range(TRIES)]
    assert outcomes(results) == {case.status: TRIES}


@pytest.mark.parametrize("case_name", list(CASES))
def test_a_raw_socket_on_a_reused_connection_gets_every_closing_answer(
    case_name: str, servers: dict[str, Server], request: pytest.FixtureRequest
) -> None:
    case, server = prepared(case_name, servers, request)
    if case.slow:
        results: list[int | str] = []
        threads = [
            threading.Thread(target=lambda: results.append(raw_try(case, server)))
            for _ in range(TRIES)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        results = [raw_try(case, server) for _ in range(TRIES)]
    assert outcomes(results) == {case.status: TRIES}


def mkdir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path
