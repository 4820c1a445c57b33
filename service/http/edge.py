"""ASGI middleware at the edge of the app: HTTP checks, HEAD wherever GET works, a body limit.

- `ProtocolChecks`: what the HTTP parsers let through but the service refuses with 400 in
  the JSON error shape: an HTTP version other than 1.0 and 1.1 (httptools passes HTTP/0.9,
  h11 any `HTTP/d.d`), an HTTP/1.1 request without exactly one `Host` header (RFC 9112
  §3.2; httptools passes it), both `Transfer-Encoding` and `Content-Length` (a smuggling
  pattern h11 accepts), and transfer codings other than `chunked` alone (httptools passes
  `gzip, chunked` and `gzip` + `chunked` on two lines, decoding only the chunks).

- `HeadAsGet`: FastAPI routes declared with GET answer HEAD with 405; HTTP says a server
  answers HEAD wherever it answers GET, with the same headers and no body. The request runs
  as a GET and the body is dropped (uvicorn would drop it too; in-process clients see none).
- `BodyLimit`: the request body is read before the app runs, up to `max_body_bytes`: a
  larger one (declared or streamed) is answered 413 in the JSON error shape; the body read is
  replayed to the app, so every layer below sees it unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.errors import send_error


class ProtocolChecks:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = [name for name, _ in scope["headers"]]
        version = scope.get("http_version")
        problem = None
        if version not in ("1.0", "1.1"):
            problem = f"HTTP/{version} is not supported; use HTTP/1.1"
        elif version == "1.1" and names.count(b"host") != 1:
            problem = "an HTTP/1.1 request needs exactly one Host header"
        elif b"transfer-encoding" in names and b"content-length" in names:
            problem = "both Transfer-Encoding and Content-Length"
        elif b"transfer-encoding" in names and transfer_codings(scope) != [b"chunked"]:
            problem = "Transfer-Encoding other than chunked alone; the service decodes no other"
        if problem is None:
            await self.app(scope, receive, send)
        else:
            await send_error(send, 400, "bad_request", problem, None, _CLOSE)


def transfer_codings(scope: Scope) -> list[bytes]:
    """The request's transfer codings, in order, from all its Transfer-Encoding lines."""
    values = b",".join(value for name, value in scope["headers"] if name == b"transfer-encoding")
    return [coding.strip().lower() for coding in values.split(b",")]


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        inner = {**scope, "method": "GET"}

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(inner, receive, without_body)
        finally:
            if "route" in inner:  # the route template, for the metrics around this middleware
                scope.setdefault("route", inner["route"])


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole request body (at most `limit` bytes) and whether the client is still there."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def replaying(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A receive callable that yields `body` once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header's value, if there is exactly one well-formed one."""
    values = [v for k, v in scope["headers"] if k == b"content-length"]
    if len(values) != 1 or not values[0].strip().isdigit():
        return None
    return int(values[0])


def has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return b"transfer-encoding" in headers or (declared_length(scope) or 0) > 0


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        too_large = f"request body larger than {self.limit} bytes"
        if (declared_length(scope) or 0) > self.limit:
            await send_error(send, 413, "payload_too_large", too_large, "body", _CLOSE)
            return
        try:
            body, connected = await read_body(receive, self.limit)
        except BodyTooLarge:
            await send_error(send, 413, "payload_too_large", too_large, "body", _CLOSE)
            return
        if connected:
            await self.app(scope, replaying(body, receive), send)


# The rest of an oversized body is never read: the connection cannot be reused.
_CLOSE = [(b"connection", b"close")]
