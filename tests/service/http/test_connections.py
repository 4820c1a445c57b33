"""Slow, idle and too many clients against a real server (service/http/connections.py): the read
timeout closes slowloris and silent connections, the keep-alive timeout idle ones, the
connection cap keeps room for normal requests (and answers 503 when every connection is
busy), and file descriptors never run out or flood the log.

    python -m pytest tests/service/http/test_connections.py -q
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path

import httpx
import pytest

from service.http.connections import FD_RESERVE
from tests.service.conftest import Server, poll, settings_for
from tests.support import onnx_models as models
from tests.support.gan_serve import gan_serve
from tests.support.ports import free_port
from tests.support.processes import stopping

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

TIMEOUT_S = 1.0  # the read and keep-alive timeouts of these servers
MARGIN_S = 3.0  # how much later than its timeout a close may come on a busy small machine


def connect(server: Server | str) -> socket.socket:
    url = server if isinstance(server, str) else server.url
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S + MARGIN_S + 10)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def timed_server(serve: Callable[..., Server], model_dir: Path, **overrides: object) -> Server:
    settings = settings_for(
        model_dir, read_timeout_s=TIMEOUT_S, keep_alive_timeout_s=TIMEOUT_S, **overrides
    )
    return serve(settings)


def guarded(server: Server) -> type:
    """The protocol class of `server`, which keeps its connections (live, evictable)."""
    cls: type = server.server.config.http
    return cls


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = timed_server(serve, model_dir)
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        first = sock.recv(65536)
        answered = time.monotonic()
        assert first.startswith(b"HTTP/1.1 200")
        assert read_until_closed(sock) == b""  # closed by the server, nothing more said
        idle = time.monotonic() - answered
    assert TIMEOUT_S * 0.9 <= idle < TIMEOUT_S + MARGIN_S


def test_a_slowloris_connection_is_closed_after_the_read_timeout(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = timed_server(serve, model_dir)
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 100
    with connect(server) as sock:
        opened = time.monotonic()
        sent = 0
        try:  # one byte every 50 ms, never the end of the head: each byte resets no timer
            while sent < len(head):
                sock.sendall(head[sent : sent + 1])
                sent += 1
                time.sleep(0.05)  # the slow client's pace, not a wait for the server
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_until_closed(sock)
        held = time.monotonic() - opened
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in answer
    assert sent < len(head)  # it was cut off while still sending
    assert TIMEOUT_S * 0.9 <= held < TIMEOUT_S + MARGIN_S


def test_a_silent_connection_is_closed_after_the_read_timeout(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = timed_server(serve, model_dir)
    with connect(server) as sock:
        opened = time.monotonic()
        assert read_until_closed(sock) == b""
        held = time.monotonic() - opened
    assert TIMEOUT_S * 0.9 <= held < TIMEOUT_S + MARGIN_S


def test_more_connections_than_the_cap_still_serve_a_normal_request(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    cap = 20
    server = serve(settings_for(model_dir, max_connections=cap))
    with ExitStack() as stack:
        held = [stack.enter_context(connect(server)) for _ in range(3 * cap)]
        for sock in held[::2]:  # half of them slowloris, half silent
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        poll(lambda: len(guarded(server).live) <= cap)
        fresh = httpx.Client(base_url=server.url, timeout=10)
        stack.callback(fresh.close)
        assert fresh.get("/healthz").status_code == 200
        assert fresh.post("/samples", params={"n": 2}).status_code == 200
        closed = sum(1 for sock in held if _closed_by_server(sock))
    assert closed >= 2 * cap  # the oldest idle ones made room


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_newcomer_gets_503_json_when_every_connection_is_busy(
    serve: Callable[..., Server], slow_dir: Path
) -> None:
    cap = 2
    server = serve(settings_for(slow_dir, max_batch=1, max_connections=cap))
    request = b"POST /samples?n=3&format=npy HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    server.client.close()  # its idle keep-alive connection would be the one to go
    with ExitStack() as stack:
        busy = [stack.enter_context(connect(server)) for _ in range(cap)]
        for sock in busy:
            sock.sendall(request)
        protocol = guarded(server)
        poll(lambda: len(protocol.live) == cap and not protocol.evictable)
        with connect(server) as newcomer:
            newcomer.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = read_until_closed(newcomer)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b'"overloaded"' in answer and b"retry-after: 1" in answer.lower()
        assert all(read_until_closed(sock).startswith(b"HTTP/1.1 200") for sock in busy)
    assert httpx.get(server.url + "/healthz").status_code == 200


# -- file descriptors: a real `python -m service` under a small open-file limit -------------
FD_LIMIT = 256


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def test_connections_beyond_the_open_file_limit_leave_healthz_answering_and_the_log_quiet(
    tmp_path: Path,
) -> None:
    models.mlp_generator(tmp_path / "tiny.onnx")
    env = {
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_MAX_BATCH": "4",
        "GAN_ACCESS_LOG": "false",
    }  # GAN_MAX_CONNECTIONS: its default, 1000
    log = tmp_path / "server.log"
    with ExitStack() as stack:
        served = stack.enter_context(
            gan_serve(env, log, stop_timeout_s=30, preexec_fn=_limit_open_files)
        )
        url = served.url
        opened = [stack.enter_context(connect(url)) for _ in range(2 * FD_LIMIT)]
        assert len(opened) == 2 * FD_LIMIT
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
        assert httpx.post(url + "/samples", params={"n": 1}, timeout=10).status_code == 200
    text = log.read_text()
    cap = FD_LIMIT - FD_RESERVE
    assert f"at most {cap} connections" in text
    assert "out of system resource" not in text and "Too many open files" not in text
    assert len(text.splitlines()) < 20, text


def test_accept_errors_out_of_file_descriptors_reach_the_log_once_per_interval(
    tmp_path: Path,
) -> None:
    # asyncio's loop logs each failed accept with a traceback (thousands of lines a second
    # without the limit); uvloop, gan-serve's loop, sheds them silently.
    port = free_port()
    log = tmp_path / "flood.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.service.http.accept_flood", str(port), "3"],
            stdout=subprocess.PIPE,
            stderr=sink,
            cwd=Path(__file__).resolve().parents[3],  # the repository: `tests` importable
        )
        with stopping(process, timeout_s=30):
            assert process.stdout is not None
            assert process.stdout.readline() == b"exhausted\n", log.read_text()
            attempts, started = 0, time.monotonic()
            while attempts < 2000 and time.monotonic() - started < 2:
                attempts += 1
                with suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            assert process.wait(timeout=30) == 0
            process.stdout.close()
    text = log.read_text()
    assert text.count("socket.accept() out of system resource") == 1, text[-3000:]
    assert len(text.splitlines()) < 200


# -- held connections of every kind never lock out a probe -------------------------------------

HELD_KINDS = {
    "slow-head": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: a",
    "slow-body": b"POST /samples?n=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nx",
    "idle": b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",  # answered, then kept alive
    "silent": b"",
}


def hold(server: Server, kind: str) -> socket.socket:
    """A connection of `kind`, once the server has it and has read what it sent."""
    sock = connect(server)
    if HELD_KINDS[kind]:
        sock.sendall(HELD_KINDS[kind])
    if kind == "idle":
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    port = sock.getsockname()[1]

    def seen() -> bool:
        mine = [c for c in guarded(server).live if c.client and c.client[1] == port]
        return bool(mine) and (kind == "silent" or not mine[0].silent)

    poll(seen)
    return sock


@pytest.mark.parametrize("kind", [*HELD_KINDS, "mixed"])
def test_healthz_answers_within_100_ms_while_every_slot_is_held(
    serve: Callable[..., Server], model_dir: Path, kind: str
) -> None:
    cap = 10
    server = serve(
        settings_for(model_dir, max_connections=cap, read_timeout_s=8, keep_alive_timeout_s=8)
    )
    server.client.close()  # the fixture's own keep-alive connection is not one of the held
    kinds = list(HELD_KINDS) if kind == "mixed" else [kind]
    with ExitStack() as stack:
        opened = 0
        for probe in range(5):
            while len(guarded(server).live) < cap:  # every slot held, again before each probe
                stack.enter_context(hold(server, kinds[opened % len(kinds)]))
                opened += 1
            started = time.perf_counter()
            with httpx.Client(base_url=server.url, timeout=10) as fresh:
                answer = fresh.get("/healthz")
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200, (probe, answer.text)
            assert elapsed < 0.1, f"probe {probe}: {elapsed * 1000:.0f} ms"


def test_slow_bodies_beyond_the_cap_are_answered_503_to_make_room(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    cap = 10
    server = serve(settings_for(model_dir, max_connections=cap, read_timeout_s=8))
    server.client.close()
    with ExitStack() as stack:
        held = [stack.enter_context(hold(server, "slow-body")) for _ in range(cap + 2)]
        # the two oldest made room for the last two: a 503 that says why, then the close
        for sock in held[:2]:
            answer = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 503") and b'"overloaded"' in answer, answer
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
