"""Rate-limit the event loop's error log and uvicorn's per-request protocol warnings, so
neither running out of resources nor a stream of bad requests can flood the log.

When `accept()` fails for lack of file descriptors, asyncio's selector loop logs the error
with a traceback once per pending connection (thousands of lines a second: docs/reliability.md)
and then once per retry. uvloop sheds such connections without logging; the
connection cap in `service.http.connections` keeps descriptors free; this filter is the last line:
each kind of asyncio error is logged at most once per `interval_s`, followed by how many
like it were dropped meanwhile. uvicorn also warns once per malformed request ("Invalid HTTP
request received.", the parsers' rejections and the connection layer's 431s) and twice per
request asking for a WebSocket upgrade gan-serve does not serve: those warnings pass through
the same filter on the `uvicorn.error` logger, and nothing else of that logger does (an
application's traceback is always logged).
"""

from __future__ import annotations

import logging
import re
import time

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+|fd=-?\d+|\d+")


# uvicorn's warnings that come once per request a client chooses to send.
PROTOCOL_WARNINGS = (
    "Invalid HTTP request received.",
    "Unsupported upgrade request.",
    "No supported WebSocket library detected.",
)


class RepeatFilter(logging.Filter):
    """Pass the first record of each kind per `interval_s`; drop and count the rest. With
    `only`, records whose message starts otherwise pass untouched."""

    def __init__(
        self, interval_s: float = 10.0, max_kinds: int = 64, only: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.max_kinds = max_kinds
        self.only = only
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (last passed, dropped since)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.only and not str(record.msg).startswith(self.only):
            return True
        first_line = str(record.msg).split("\n", 1)[0]
        kind = _ADDRESS.sub("#", first_line)[:200]  # one kind, whatever the object addresses
        now = time.monotonic()
        passed, dropped = self._kinds.get(kind, (-self.interval_s, 0))
        if now - passed < self.interval_s:
            self._kinds[kind] = (passed, dropped + 1)
            return False
        if len(self._kinds) >= self.max_kinds:
            self._kinds.clear()  # bounded memory; at worst one more line per kind
        self._kinds[kind] = (now, 0)
        if dropped:
            seconds = now - passed
            record.msg = f"{record.msg}\n({dropped} more like this in the last {seconds:.0f} s)"
        return True


def _install(logger_name: str, repeat: RepeatFilter) -> RepeatFilter:
    """`repeat` on the logger, unless a RepeatFilter is there already: that one."""
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, RepeatFilter):
            return existing
    logger.addFilter(repeat)
    return repeat


def limit_event_loop_errors(interval_s: float = 10.0) -> RepeatFilter:
    """Install a RepeatFilter on the `asyncio` logger (the loops' error log) and return it."""
    return _install("asyncio", RepeatFilter(interval_s))


def limit_protocol_warnings(interval_s: float = 10.0) -> RepeatFilter:
    """Install a RepeatFilter for `PROTOCOL_WARNINGS` on uvicorn's error log; return it."""
    return _install("uvicorn.error", RepeatFilter(interval_s, only=PROTOCOL_WARNINGS))
