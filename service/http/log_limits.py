"""Rate-limit the event loop's error log, so running out of resources cannot flood it.

When `accept()` fails for lack of file descriptors, asyncio's selector loop logs the error
with a traceback once per pending connection (thousands of lines a second: docs/reliability.md)
and then once per retry. uvloop sheds such connections without logging; the
connection cap in `service.http.connections` keeps descriptors free; this filter is the last line:
each kind of asyncio error is logged at most once per `interval_s`, followed by how many
like it were dropped meanwhile.
"""

from __future__ import annotations

import logging
import re
import time

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+|fd=-?\d+|\d+")


class RepeatFilter(logging.Filter):
    """Pass the first record of each kind per `interval_s`; drop and count the rest."""

    def __init__(self, interval_s: float = 10.0, max_kinds: int = 64) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.max_kinds = max_kinds
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (last passed, dropped since)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
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


def limit_event_loop_errors(interval_s: float = 10.0) -> RepeatFilter:
    """Install a RepeatFilter on the `asyncio` logger (the loops' error log) and return it."""
    logger = logging.getLogger("asyncio")
    for existing in logger.filters:
        if isinstance(existing, RepeatFilter):
            return existing
    repeat = RepeatFilter(interval_s)
    logger.addFilter(repeat)
    return repeat
