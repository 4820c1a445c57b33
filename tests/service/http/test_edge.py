"""HEAD wherever GET works (service/http/edge.py): the GET's status and headers, no body."""

from __future__ import annotations

import socket

import pytest

from tests.service.conftest import Server

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
