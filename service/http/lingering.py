"""The lingering close of a connection (nginx's `lingering_close`), under uvicorn's protocols.

A socket closed with bytes of the client's still unread, or with bytes arriving after it
closed, makes the kernel answer with a reset; a reset that reaches the client before it has
read the answer destroys the answer (a 431 to a head still arriving, a 413 to a body, a 408 to
a slow body, any `Connection: close` answer to a client that sends on). So a connection does
not close when uvicorn closes it: after the answer's last byte has left, its write side is
shut (FIN) and what the client still sends is read and dropped, until the client closes its
side, `LINGER_BYTES` have been dropped, or `LINGER_S` have passed; then the socket closes.

`LingeringTransport` is the transport uvicorn's protocol is given instead of the socket's;
`Lingering` is mixed into the connection guard (`service.http.guard`), which keeps the
connections that linger in `closing`.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Protocol

# At most this long after the answer's last byte left, and this much read and dropped,
# before the socket closes whatever the client does.
LINGER_S = 2.0
LINGER_BYTES = 4 << 20


class Owner(Protocol):
    """What the transport asks of the connection that owns it."""

    def linger(self) -> None: ...
    def may_read(self) -> bool: ...


class LingeringTransport(asyncio.Transport):
    """The socket's transport, except that `close()` is the owner's lingering close and
    reading resumes only when the owner lets it."""

    def __init__(self, raw: asyncio.Transport, owner: Owner) -> None:
        super().__init__()
        self.raw, self.owner = raw, owner
        self.closing = False

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.owner.linger()

    def is_closing(self) -> bool:
        return self.closing or self.raw.is_closing()

    def abort(self) -> None:
        self.closing = True
        self.raw.abort()

    def pause_reading(self) -> None:
        if not self.closing:
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if not self.closing and self.owner.may_read():
            self.raw.resume_reading()

    def is_reading(self) -> bool:
        return self.raw.is_reading()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.raw.write(data)

    def write_eof(self) -> None:
        self.raw.write_eof()

    def can_write_eof(self) -> bool:
        return self.raw.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.raw.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.raw.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.raw.get_protocol()


class Lingering:
    """The lingering close, mixed into the connection guard (before uvicorn's protocol)."""

    # Set per server by the guard: its connections that are closing, oldest first.
    closing: ClassVar[dict[Any, None]]

    # set by the guard's connection_made
    raw: asyncio.Transport
    proxy: LingeringTransport
    loop: asyncio.AbstractEventLoop
    dropped: int  # bytes read and dropped since the connection began to close
    quiet: bool  # no byte received since the last answer (or ever)
    linger_timer: asyncio.TimerHandle | None

    def forget(self) -> None:
        """Leave the guard's registries of open connections (the guard's)."""

    def linger(self) -> None:
        """uvicorn closes the connection: FIN after the answer, drop what still comes, close
        when the client does (eof_received), or once LINGER_BYTES or LINGER_S are up."""
        self.forget()
        raw = self.raw
        if raw.is_closing():
            return
        if self.quiet and self.sent():  # idle: no answer on its way, nothing of the client's
            self.cut()
            return
        self.closing[self] = None
        if raw.can_write_eof():  # not TLS: the transport sends FIN once its buffer is empty
            raw.write_eof()
        if self.dropped < LINGER_BYTES:
            raw.resume_reading()
        if self.sent():
            self.linger_timer = self.loop.call_later(LINGER_S, self.cut)
        else:  # resume_writing() comes when the answer's last byte has left
            raw.set_write_buffer_limits(high=0)

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        if self in self.closing and self.linger_timer is None and self.sent():
            self.linger_timer = self.loop.call_later(LINGER_S, self.cut)

    def drop(self, size: int) -> None:
        """Bytes received that nobody will read: past LINGER_BYTES, stop (close or pause)."""
        self.dropped += size
        if self.dropped > LINGER_BYTES:
            if self.proxy.is_closing():
                self.cut()
            else:
                self.raw.pause_reading()

    def sent(self) -> bool:
        """Whether every byte written is with the kernel."""
        return self.raw.get_write_buffer_size() == 0

    def cut(self) -> None:
        """Close the socket now: the end of a lingering close, or a close without one."""
        self.forget()
        self.closing.pop(self, None)
        if self.linger_timer is not None:
            self.linger_timer.cancel()
            self.linger_timer = None
        self.proxy.closing = True
        self.raw.close()
