"""uvicorn's two parsers under the connection guard, with `GAN_MAX_HEADER_BYTES` on every head.

uvicorn measures nothing: httptools parses whatever arrives, a head of 73,000 headers or 16 MB
of trailers included, and h11 checks only a head still incomplete. Here every head on a
connection is measured, pipelined or not, and so are a chunked body's trailers (counted,
then dropped: RFC 9110 §6.5.1 lets a server discard them); over the limit the request gets
431. A head's size is counted as `METHOD target HTTP/1.1\\r\\n`, each header as
`name: value\\r\\n`, and the blank line: its size on the wire, written plainly.

- `GuardedHttpTools`: httptools reports the pieces of a head as it parses them, except the
  header line in progress, which it keeps to itself: it is fed `READ_SLICE` bytes at a time,
  so that line is known to be at most the bytes fed since its last report. What it holds of
  a connection's head stays within the limit + `READ_SLICE`; at most `MAX_PIPELINED` parsed
  requests wait behind the one being answered (the bytes after them wait unparsed, and the
  socket is not read meanwhile).
- `GuardedH11`: h11 parses a head once it is all there (an incomplete one is checked against
  the limit by h11 itself), and one request at a time: each complete head and each trailer
  section is measured as h11 hands it over.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http.guard import Guard

# Bytes given to the parser at a time: what it holds of an unreported header line.
READ_SLICE = 4096
# Parsed requests that may wait on a connection behind the one being answered.
MAX_PIPELINED = 2
# The request line's bytes besides its method and target, and the blank line's.
_FRAMING = len("  HTTP/1.1\r\n") + len("\r\n")


class TooLarge(Exception):
    """Raised in a parser callback: stops the parser (uvicorn then calls send_400_response)."""


class GuardedHttpTools(Guard, HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.section: Literal["head", "body"] | None = None
        self.counted = 0  # bytes of the head (or trailers) in progress, as reported
        self.unseen = 0  # bytes fed since the parser's last report: at most this much more
        self.reported = False
        self.held = b""  # bytes not fed yet: MAX_PIPELINED requests wait already
        super().connection_made(transport)

    def feed(self, data: bytes) -> None:
        was_held = bool(self.held)
        if was_held:
            data, self.held = self.held + data, b""
        view = memoryview(data)
        limit = self.limits.max_header_bytes + READ_SLICE
        for start in range(0, len(view), READ_SLICE):
            if len(self.pipeline) >= MAX_PIPELINED:
                self.held = bytes(view[start:])
                self.raw.pause_reading()
                return
            piece = view[start : start + READ_SLICE]
            self.reported = False
            HttpToolsProtocol.data_received(self, piece)  # type: ignore[arg-type]
            if self.proxy.is_closing() or self.refusal is not None:
                return
            self.unseen = len(piece) + (0 if self.reported else self.unseen)
            if self.section is not None and self.counted + self.unseen > limit:
                what = "request head" if self.section == "head" else "chunked body framing"
                self.refuse(431, "header_too_large", self.head_too_large(what), new_head=False)
                return
        if was_held and not self.flow.read_paused:
            self.raw.resume_reading()

    def may_read(self) -> bool:
        return not self.held

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.held and not self.proxy.is_closing():
            self.loop.call_soon(self.feed_held)
        if self.section is not None and self.read_timer is None:
            self.arm_read_timer()  # a pipelined request is read again: its time starts now

    def feed_held(self) -> None:
        if self.held and not self.proxy.is_closing() and self.refusal is None:
            self.data_received(b"")

    def in_head(self) -> bool:
        return self.section != "body"

    def pipelined(self) -> int:
        return len(self.pipeline)

    def mid_request(self) -> bool:
        return self.section is not None or bool(self.held)

    # -- the parser's reports ---------------------------------------------------------------

    def count(self, size: int, what: str = "request head") -> None:
        self.reported = True
        self.counted += size
        if self.counted > self.limits.max_header_bytes:
            self.too_large = self.head_too_large(what)
            raise TooLarge(self.too_large)

    def on_message_begin(self) -> None:
        self.section, self.counted, self.reported = "head", 0, True
        if self.read_timer is None:
            self.arm_read_timer()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self.count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.section == "body":  # a trailer: counted, then dropped
            self.count(len(name) + len(value) + 4, "request trailers")
            return
        self.count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.count(len(self.parser.get_method()) + _FRAMING)
        self.section, self.counted = "body", 0
        queued = self.cycle is not None and not self.cycle.response_complete
        super().on_headers_complete()
        if queued:  # pipelined: uvicorn reads no more until the requests before it are answered
            self.cancel_read_timer()

    def on_body(self, body: bytes) -> None:
        self.reported = True
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self.reported = True

    def on_chunk_complete(self) -> None:
        self.reported = True

    def on_message_complete(self) -> None:
        self.section, self.counted, self.reported = None, 0, True
        self.cancel_read_timer()
        super().on_message_complete()


class MeteredH11(h11.Connection):
    """h11's server connection, measuring each complete head and trailer section."""

    def __init__(self, guard: GuardedH11, limit: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=limit)
        self.guard, self.limit = guard, limit

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431:  # h11's own: an incomplete head over the limit
                self.guard.too_large = self.guard.head_too_large()
            raise
        if isinstance(event, h11.Request):
            size, what = len(event.method) + len(event.target) + _FRAMING, "request head"
        elif isinstance(event, h11.EndOfMessage) and event.headers:
            size, what = 0, "request trailers"
        else:
            return event
        size += sum(len(name) + len(value) + 4 for name, value in event.headers)
        if size > self.limit:
            self.guard.too_large = self.guard.head_too_large(what)
            raise h11.RemoteProtocolError(self.guard.too_large, error_status_hint=431)
        return event


class GuardedH11(Guard, H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = MeteredH11(self, self.limits.max_header_bytes)
