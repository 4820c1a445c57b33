"""The event loop's error log, rate-limited per kind of error (service/http/log_limits.py)."""

from __future__ import annotations

import logging
import time

from service.http.log_limits import RepeatFilter, limit_event_loop_errors


def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("asyncio", level, __file__, 1, message, None, None)


def test_repeats_of_one_kind_pass_once_per_interval_then_report_the_count() -> None:
    repeat = RepeatFilter(interval_s=0.2)
    accept = "socket.accept() out of system resource\nsocket: <TransportSocket fd={fd}>"
    passed = [repeat.filter(record(accept.format(fd=fd))) for fd in range(100)]
    assert passed == [True] + [False] * 99
    started = time.monotonic()
    while time.monotonic() - started < 0.25:  # the interval is the behaviour under test
        time.sleep(0.01)
    later = record(accept.format(fd=7))
    assert repeat.filter(later)
    assert "(99 more like this in the last 0 s)" in later.getMessage()


def test_other_kinds_and_lower_levels_are_not_held_back() -> None:
    repeat = RepeatFilter(interval_s=60)
    assert repeat.filter(record("socket.accept() out of system resource"))
    assert repeat.filter(record("Exception in callback Loop._start_serving(<at 0x7f00>)"))
    assert not repeat.filter(record("Exception in callback Loop._start_serving(<at 0x7f99>)"))
    assert all(repeat.filter(record("connection made", logging.INFO)) for _ in range(5))


def test_the_limit_is_installed_once_on_the_asyncio_logger() -> None:
    logger = logging.getLogger("asyncio")
    before = list(logger.filters)
    try:
        first, second = limit_event_loop_errors(), limit_event_loop_errors()
        assert first is second
        assert sum(isinstance(f, RepeatFilter) for f in logger.filters) == 1
    finally:
        logger.filters[:] = before


def test_memory_stays_bounded_with_many_kinds() -> None:
    repeat = RepeatFilter(interval_s=60, max_kinds=64)
    for index in range(200):
        repeat.filter(record(f"error kind {'x' * index}"))
    assert len(repeat._kinds) <= 64
