"""HEAD wherever GET works (service/http/edge.py): the GET's status and headers, no body."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import Server, settings_for

GET_ROUTES = ["/healthz", "/readyz", "/models", "/", "/docs", "/openapi.json", "/static/gallery.js"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_like_get_without_a_body(server: Server, path: str) -> None:
    get, head = server.client.get(path), server.client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))
    assert head.content == b""


def test_head_sends_no_body_bytes_on_the_wire(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"HEAD /models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: " in head.lower()
    assert rest == b""


def test_head_on_a_post_route_is_405_like_get(server: Server) -> None:
    assert server.client.head("/samples").status_code == 405
    assert server.client.get("/samples").status_code == 405


def test_head_is_counted_under_its_route(server: Server) -> None:
    before = server.metric("gan_requests_total", route="/healthz", status="200")
    server.client.head("/healthz")
    assert server.metric("gan_requests_total", route="/healthz", status="200") == before + 1


def test_a_406_quotes_at_most_40_characters_of_the_accept_header(server: Server) -> None:
    accept = "text/" + "x" * 16_000
    refused = server.client.post("/samples", params={"n": 1}, headers={"Accept": accept})
    assert refused.status_code == 406
    message = refused.json()["error"]["message"]
    assert f"{accept[:40]}…" in message and len(message) < 200, message[:300]


# -- transfer codings: chunked alone, or 400 --------------------------------------------------

UNKNOWN_CODINGS = [
    [b"gzip, chunked"],
    [b"chunked, foo"],
    [b"foo"],
    [b"identity"],
    [b"chunked, chunked"],
    [b"gzip", b"chunked"],  # two header lines: one list
    [b"chunked;q=1"],
]


@pytest.fixture(scope="module", params=["httptools", "h11"])
def parsed_by(request: pytest.FixtureRequest, model_dir: Path) -> Iterator[Server]:
    started = Server(settings_for(model_dir), parser=request.param).start()
    yield started
    started.stop()


@pytest.mark.parametrize("codings", UNKNOWN_CODINGS, ids=lambda c: b" + ".join(c).decode())
def test_a_transfer_coding_other_than_chunked_alone_is_400_json(
    parsed_by: Server, codings: list[bytes]
) -> None:
    lines = b"".join(b"Transfer-Encoding: " + coding + b"\r\n" for coding in codings)
    request = b"POST /samples?n=1 HTTP/1.1\r\nHost: t\r\n" + lines + b"\r\n3\r\nabc\r\n0\r\n\r\n"
    with socket.create_connection(parsed_by.address, timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_chunked_alone_in_any_case_is_accepted(parsed_by: Server) -> None:
    request = (
        b"POST /samples?n=1&format=npy HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n"
        b"Connection: close\r\n\r\n0\r\n\r\n"
    )
    with socket.create_connection(parsed_by.address, timeout=10) as sock:
        sock.sendall(request)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
