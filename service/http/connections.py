"""The HTTP connection layer under uvicorn: JSON protocol errors, read timeouts, a connection cap.

uvicorn answers a request its parser rejects with a text/plain 400, lets a client take as long
as it likes to send a request head, and keeps every connection it accepts. The protocol
classes here are uvicorn's own (httptools or h11), with four additions:

- protocol errors are the service's JSON error shape: 400 `bad_request` (malformed request),
  431 `header_too_large` (head over `GAN_MAX_HEADER_BYTES`), 408 `request_timeout`;
- a request's head and body must arrive within `GAN_READ_TIMEOUT_S` of its first byte (of the
  connection's opening, for the first request): slowloris clients are closed;
- at most `GAN_MAX_CONNECTIONS` connections are open, and never more than the file-descriptor
  limit less `FD_RESERVE`: a new connection beyond the cap closes the oldest connection that
  has no request in flight (idle, or still sending its head), and when every connection has
  one in flight the newcomer's request gets 503 `overloaded` and the connection closes;
- an idle keep-alive connection closes after `GAN_KEEP_ALIVE_TIMEOUT_S` (uvicorn's own timer).

`uvicorn_options(settings)` gives the uvicorn.Config arguments that install all of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http.errors import error_body
from service.http.log_limits import RepeatFilter
from service.settings import Settings

log = logging.getLogger("service.http.connections")
log.addFilter(RepeatFilter())  # "all busy" comes with every connection of a flood: once per 10 s

Parser = Literal["httptools", "h11"]

# File descriptors kept free of client connections: model files, the listening socket,
# logs, onnxruntime and the Python runtime all need some, and /healthz needs one to answer.
FD_RESERVE = 64

_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


@dataclass(frozen=True)
class Limits:
    """What one server allows a connection; built from the settings by `limits_for`."""

    read_timeout_s: float
    max_header_bytes: int
    max_connections: int


def fd_limit() -> int:
    """The soft limit on open file descriptors of this process."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def limits_for(settings: Settings) -> Limits:
    """The settings' limits, the connection cap lowered to fit the file-descriptor limit."""
    cap, fds = settings.max_connections, fd_limit()
    if cap > fds - FD_RESERVE:
        lowered = max(1, fds - FD_RESERVE)
        log.warning(
            "GAN_MAX_CONNECTIONS=%d does not fit the open-file limit %d (less %d kept free): "
            "at most %d connections",
            cap,
            fds,
            FD_RESERVE,
            lowered,
        )
        cap = lowered
    return Limits(settings.read_timeout_s, settings.max_header_bytes, cap)


def error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying the JSON error shape, closing the connection."""
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The app of a connection over the cap: 503 in the JSON shape, then close."""
    body = json.dumps(error_body("overloaded", "too many open connections; retry later")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Guard:
    """Mixed into uvicorn's protocol classes (before them in the MRO)."""

    # Set per server by protocol_class(): the limits, and the connections of that server in
    # opening order, with those that have no request in flight (evictable) kept apart.
    limits: ClassVar[Limits]
    live: ClassVar[dict[_Guard, None]]
    evictable: ClassVar[dict[_Guard, None]]

    # uvicorn's attributes this mixin reads
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._head_bytes, self._tail = 0, b""
        self._read_timer: asyncio.TimerHandle | None = None
        self.live[self] = None
        self.evictable[self] = None
        self._arm_read_timer()
        if len(self.live) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            if self._read_timer is None:  # the first byte of the next request on this connection
                self._arm_read_timer()
            # Measure the head up to its blank line (the parsers would take a large head whole
            # when it arrives in one read); the last bytes seen catch a line split between reads.
            end = (self._tail + data).find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
            self._tail = data[-3:]
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "header_too_large", self._head_too_large())
                return
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.transport.is_closing():
            return
        if self.cycle is not before and self.cycle is not None:  # a request head arrived
            self.evictable.pop(self, None)
            self._head_bytes, self._tail = 0, b""
        if not self._between_requests() and not self.cycle.more_body:  # the whole request is in
            self._cancel_read_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and self._between_requests():
            self.evictable.pop(self, None)  # re-inserted last: the most recently used
            self.evictable[self] = None
            self._head_bytes, self._tail = 0, b""

    def send_400_response(self, msg: str) -> None:
        # Called by uvicorn when its parser rejects the bytes received.
        if self._between_requests() and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, "header_too_large", self._head_too_large())
        else:
            self._refuse(400, "bad_request", "malformed HTTP request")

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_too_large(self) -> str:
        return f"request head larger than {self.limits.max_header_bytes} bytes"

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer with a JSON error unless a response is already under way, and close."""
        self._forget()
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app's answer, if any, would come too late
        self.transport.write(error_response(status, code, message))
        self.transport.close()

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.limits.read_timeout_s, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._between_requests() and not self._head_bytes:  # not a byte sent: just close
            self._forget()
            self.transport.close()
        else:  # a head or a body too slow (the app, waiting for the body, sees a disconnect)
            seconds = self.limits.read_timeout_s
            self._refuse(408, "request_timeout", f"request not received within {seconds:g} s")

    def _forget(self) -> None:
        self._cancel_read_timer()
        self.live.pop(self, None)
        self.evictable.pop(self, None)

    def _make_room(self) -> None:
        """Over the cap: close the oldest connections without a request in flight."""
        idle = [other for other in self.evictable if other is not self]
        for other in idle[: len(self.live) - self.limits.max_connections]:
            other._forget()
            other.transport.close()
        if len(self.live) > self.limits.max_connections:
            # Every other connection is busy: this one answers its request 503 and closes.
            self.app = _overloaded
            log.warning("%d connections open, all busy: answering 503", len(self.live))


class GuardedHttpTools(_Guard, HttpToolsProtocol):
    pass


class GuardedH11(_Guard, H11Protocol):
    pass


def protocol_class(parser: Parser, limits: Limits) -> type[asyncio.Protocol]:
    """A protocol class for one server: uvicorn's `parser` with the guards above."""
    base = GuardedHttpTools if parser == "httptools" else GuardedH11
    namespace = {"limits": limits, "live": {}, "evictable": {}}
    return type(f"{base.__name__}Server", (base,), namespace)


def uvicorn_options(settings: Settings, parser: Parser = "httptools") -> dict[str, Any]:
    """The uvicorn.Config arguments of the connection layer."""
    limits = limits_for(settings)
    return {
        "http": protocol_class(parser, limits),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "limit_concurrency": None,  # the cap above answers in JSON and keeps room for probes
    }
