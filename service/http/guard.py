"""The connection guard mixed into uvicorn's protocol classes: JSON protocol errors, the read
timer, the connection cap, and (from `service.http.lingering`) the lingering close.

The parser-specific halves (`service.http.heads`) feed it bytes and say where the parser is;
`service.http.connections` builds the classes and describes the whole layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from service.http.errors import error_body
from service.http.lingering import Lingering, LingeringTransport
from service.http.log_limits import RepeatFilter

log = logging.getLogger("service.http.connections")
log.addFilter(RepeatFilter())  # "all busy" comes with every connection of a flood: once per 10 s

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
OVERLOADED = "too many open connections; retry later"


@dataclass(frozen=True)
class Limits:
    """What one server allows a connection; built from the settings by `limits_for`."""

    read_timeout_s: float
    max_header_bytes: int
    max_connections: int


def error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying the JSON error shape, closing the connection."""
    body = json.dumps(error_body(code, message)).encode()
    retry = "retry-after: 1\r\n" if status == 503 else ""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"{retry}connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The app of a connection over the cap: 503 in the JSON shape, then close."""
    body = json.dumps(error_body("overloaded", OVERLOADED)).encode()
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


class Guard(Lingering):
    """Mixed into uvicorn's protocol classes (before them in the MRO)."""

    # Set per server by `protocol_class`: the limits, and the connections of that server:
    # open ones, least recently used first; those of them with no request in flight (the
    # candidates to make room); and those closing (lingering).
    limits: ClassVar[Limits]
    live: ClassVar[dict[Guard, None]]
    evictable: ClassVar[dict[Guard, None]]
    closing: ClassVar[dict[Any, None]]

    # uvicorn's attributes this mixin reads
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    app: Any
    flow: Any
    conn: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = cast(asyncio.Transport, transport)  # uvloop's lacks the base class
        self.proxy = LingeringTransport(self.raw, self)
        self.silent = True  # not a byte received yet
        self.quiet = True  # not a byte received since the last answer: nothing to linger for
        self.read_timer: asyncio.TimerHandle | None = None
        self.linger_timer = None
        self.dropped = 0
        self.too_large: str | None = None  # why the parser was stopped: a head too large
        self.refusal: tuple[int, str, str] | None = None  # waits for the answers before it
        super().connection_made(self.proxy)  # type: ignore[misc]
        self.live[self] = None
        self.evictable[self] = None
        self.arm_read_timer()
        if self.over_cap():
            self.make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self.forget()
        self.closing.pop(self, None)
        if self.linger_timer is not None:
            self.linger_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self.proxy.is_closing() or self.refusal is not None:
            self.drop(len(data))
            return
        self.silent = self.quiet = False
        self.feed(data)
        if self.proxy.is_closing() or self.refusal is not None:
            return
        if self.evictable_now():
            self.evictable.setdefault(self, None)
        else:
            self.evictable.pop(self, None)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.proxy.is_closing():
            return
        if self.refusal is not None and not self.unanswered():
            self.refuse_now(*self.refusal)
        elif self.between_requests() and not self.mid_request():
            self.quiet = True
            for registry in (self.live, self.evictable):  # re-inserted last: most recently used
                registry.pop(self, None)
                registry[self] = None

    def send_400_response(self, msg: str) -> None:
        # Called by uvicorn when its parser rejects the bytes received (or a head was too large).
        if self.too_large is not None:
            self.refuse(431, "header_too_large", self.too_large, new_head=self.in_head())
        else:
            self.refuse(400, "bad_request", "malformed HTTP request", new_head=self.in_head())

    # -- what the parser halves provide (these: h11, one request at a time) -------------------

    def feed(self, data: bytes) -> None:
        """Give `data` to the parser; time the request it begins or continues."""
        if self.read_timer is None and self.between_requests():
            self.arm_read_timer()  # the first byte of the next request on this connection
        super().data_received(data)  # type: ignore[misc]
        if self.proxy.is_closing() or self.between_requests():
            return
        if not self.cycle.more_body:  # the whole request is in
            self.cancel_read_timer()

    def in_head(self) -> bool:
        """Whether the parser is between requests or in a head (not in a body or trailers)."""
        return self.between_requests()

    def pipelined(self) -> int:
        """Parsed requests waiting behind the one being answered."""
        return 0

    def mid_request(self) -> bool:
        """Whether bytes of a request not parsed whole yet have arrived."""
        return bool(self.conn.trailing_data[0])

    def may_read(self) -> bool:
        """Whether the transport may read now (the parser half may hold reading back)."""
        return True

    # -- state -----------------------------------------------------------------------------

    def between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def unanswered(self) -> bool:
        return self.pipelined() > 0 or not self.between_requests()

    def evictable_now(self) -> bool:
        """Whether no request is in flight: idle, in a head, or stuck in a body."""
        if self.pipelined():
            return False
        cycle = self.cycle
        return (
            cycle is None
            or cycle.response_complete
            or (cycle.more_body and not cycle.response_started)
        )

    def head_too_large(self, what: str = "request head") -> str:
        return f"{what} larger than {self.limits.max_header_bytes} bytes"

    # -- refusing a request ------------------------------------------------------------------

    def refuse(self, status: int, code: str, message: str, *, new_head: bool) -> None:
        """Answer with a JSON error and close: at once if the refused request is the one to
        answer; else after the answers to the (pipelined) requests before it."""
        if self.proxy.is_closing():
            return
        if self.pipelined() + (1 if new_head and not self.between_requests() else 0):
            self.refusal = (status, code, message)  # what comes from now on is dropped
            self.cancel_read_timer()
            return
        self.refuse_now(status, code, message)

    def refuse_now(self, status: int, code: str, message: str) -> None:
        self.forget()
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.proxy.close()  # an answer is under way: HTTP/1.1 can only close
            return
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's answer, if any, would come too late
            cycle.message_event.set()  # an app waiting for the body sees the disconnect now
        self.proxy.write(error_response(status, code, message))
        self.proxy.close()

    # -- the read timer ---------------------------------------------------------------------

    def arm_read_timer(self) -> None:
        self.cancel_read_timer()
        self.read_timer = self.loop.call_later(self.limits.read_timeout_s, self.read_timed_out)

    def cancel_read_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def read_timed_out(self) -> None:
        self.read_timer = None
        if self.proxy.is_closing():
            return
        if self.silent:  # not a byte sent: nothing to answer, nothing on its way to linger for
            self.cut()
        else:  # a head or a body too slow (the app, waiting for the body, sees a disconnect)
            seconds = self.limits.read_timeout_s
            message = f"request not received within {seconds:g} s"
            self.refuse(408, "request_timeout", message, new_head=self.in_head())

    # -- the connection cap -----------------------------------------------------------------

    def forget(self) -> None:
        self.cancel_read_timer()
        self.live.pop(self, None)
        self.evictable.pop(self, None)

    def over_cap(self) -> bool:
        return len(self.live) + len(self.closing) > self.limits.max_connections

    def make_room(self) -> None:
        """Over the cap: cut closing connections whose answer is sent, then close the least
        recently used connections without a request in flight."""
        for closing in [other for other in self.closing if other.sent()]:
            if not self.over_cap():
                return
            closing.cut()
        for other in [other for other in self.evictable if other is not self]:
            if not self.over_cap():
                return
            if other.evictable_now():
                other.evict()
        if self.over_cap():
            # Every other connection is busy: this one answers its request 503 and closes.
            self.app = overloaded
            log.warning("%d connections open, all busy: answering 503", len(self.live))

    def evict(self) -> None:
        """Close to make room, at once: with a 503 if a request is stuck in its body, else
        silently (idle, or in a head: no request to answer yet)."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
            self.raw.write(error_response(503, "overloaded", OVERLOADED))
        self.cut()
