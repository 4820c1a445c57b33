"""The event loop's error log, rate-limited per kind of error (service/http/log_limits.py)."""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from service.http.log_limits import (
    PROTOCOL_WARNINGS,
    RepeatFilter,
    limit_event_loop_errors,
    limit_protocol_warnings,
)
from tests.service.conftest import Server, settings_for


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


# -- uvicorn's per-request warnings, on a real server ------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_uvicorns_per_request_warnings_reach_the_log_once_per_interval(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = serve(settings_for(model_dir))
    collect = Collect()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(collect)
    try:
        for _ in range(20):
            for request in (
                b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",  # malformed
                b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"h" * 20_000 + b"\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\n\r\n",  # a WebSocket gan-serve does not serve
            ):
                with socket.create_connection(server.address, timeout=10) as sock:
                    sock.sendall(request)
                    assert sock.recv(65536)  # answered (400, 431, 200)
        assert server.client.get("/healthz").status_code == 200
    finally:
        logger.removeHandler(collect)
    kinds = Counter(record.getMessage().split("\n")[0][:40] for record in collect.records)
    assert max(kinds.values(), default=0) <= 1, kinds  # unlimited: 20 of each kind


def test_other_uvicorn_errors_are_never_held_back() -> None:
    repeat = RepeatFilter(interval_s=60, only=PROTOCOL_WARNINGS)
    trace = record("Exception in ASGI application\n", logging.ERROR)
    assert all(repeat.filter(trace) for _ in range(5))
    assert repeat.filter(record("Invalid HTTP request received.", logging.WARNING))
    assert not repeat.filter(record("Invalid HTTP request received.", logging.WARNING))
    assert limit_protocol_warnings() is limit_protocol_warnings()  # installed once
