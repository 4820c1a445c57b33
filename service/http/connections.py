"""The HTTP connection layer under uvicorn: JSON protocol errors, read timeouts, a connection cap,
the head limit on every head, and a lingering close.

uvicorn answers a request its parser rejects with a text/plain 400, lets a client take as long
as it likes to send a request, keeps every connection it accepts, lets its parser hold heads
of any size but the first, and closes a connection with the client's bytes unread (the kernel
then answers them with a reset, which destroys the answer on its way). The protocol classes
here are uvicorn's own (httptools or h11) with a guard mixed in:

- protocol errors are the service's JSON error shape: 400 `bad_request` (malformed request),
  431 `header_too_large` (a head, or a chunked body's trailers, over `GAN_MAX_HEADER_BYTES`),
  408 `request_timeout`; an error in a pipelined request is answered after the answers to the
  requests before it (`service.http.guard`);
- every head on a connection is measured, pipelined or not, and trailers too, so what the
  parser holds of a connection stays within the limit (`service.http.heads`);
- a request's head and body must arrive within `GAN_READ_TIMEOUT_S` of its first byte (of the
  connection's opening, for the first request): slowloris clients, slow heads and slow bodies
  alike, get 408; a connection that sends nothing is closed without an answer;
- at most `GAN_MAX_CONNECTIONS` connections are open (closing ones included), and never more
  than the file-descriptor limit less `FD_RESERVE`: a new connection beyond the cap first cuts
  closing connections whose answer is sent, then closes the least recently used connection
  with no request in flight (idle, still sending its head, or stuck in its body: that request
  gets 503 `overloaded`), so no kind of held connection locks out a probe; only when every
  connection has a request in flight does the newcomer's request get 503 `overloaded`;
- every close is a lingering close (`service.http.lingering`): FIN after the answer, what the
  client still sends read and dropped, the socket closed when the client closes (at most
  `LINGER_S` later): an answer that closes its connection is never destroyed by a reset;
- an idle keep-alive connection closes after `GAN_KEEP_ALIVE_TIMEOUT_S` (uvicorn's own timer);
- uvicorn's warnings that come once per bad request are rate-limited
  (`service.http.log_limits`).

`uvicorn_options(settings)` gives the uvicorn.Config arguments that install all of it;
`wait_sent(protocol, timeout_s)` waits until every answer's last byte is with the kernel (the
end of `gan-serve`'s drain).
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any, Literal

from service.http.guard import Guard, Limits, log
from service.http.heads import GuardedH11, GuardedHttpTools
from service.http.log_limits import limit_protocol_warnings
from service.settings import Settings

Parser = Literal["httptools", "h11"]

# File descriptors kept free of client connections: model files, the listening socket,
# logs, onnxruntime and the Python runtime all need some, and /healthz needs one to answer.
FD_RESERVE = 64


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


def protocol_class(parser: Parser, limits: Limits) -> type[asyncio.Protocol]:
    """A protocol class for one server: uvicorn's `parser` with the guard; the class keeps
    that server's connections (`live`, `evictable`, `closing`)."""
    base = GuardedHttpTools if parser == "httptools" else GuardedH11
    namespace = {"limits": limits, "live": {}, "evictable": {}, "closing": {}}
    return type(f"{base.__name__}Server", (base,), namespace)


def unsent(protocol: type[asyncio.Protocol]) -> tuple[int, int]:
    """(connections, bytes): answers of a server's connections not yet with the kernel."""
    assert issubclass(protocol, Guard), protocol
    connections = [*protocol.live, *protocol.closing]
    sizes = [connection.raw.get_write_buffer_size() for connection in connections]
    return sum(1 for size in sizes if size), sum(sizes)


async def wait_sent(protocol: type[asyncio.Protocol], timeout_s: float) -> tuple[int, int]:
    """Wait until every answer of the server whose protocol class is `protocol` has its last
    byte with the kernel, at most `timeout_s`; what is left unsent, (0, 0) when nothing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (left := unsent(protocol))[0] and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return left


def uvicorn_options(settings: Settings, parser: Parser = "httptools") -> dict[str, Any]:
    """The uvicorn.Config arguments of the connection layer (and its log limits)."""
    limits = limits_for(settings)
    limit_protocol_warnings()
    return {
        "http": protocol_class(parser, limits),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "limit_concurrency": None,  # the cap above answers in JSON and keeps room for probes
    }
