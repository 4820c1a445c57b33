"""bench/openloop.py: a request without an answer says why, in the result's `errors`."""

from __future__ import annotations

import asyncio

import pytest

from bench.httpclient import raw_request
from bench.openloop import open_loop
from tests.support.ports import free_port

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


def test_requests_to_a_closed_port_count_as_unanswered_with_their_error() -> None:
    port = free_port()  # nothing listens there
    raw = raw_request("POST", "/samples?n=1", "127.0.0.1")
    result = asyncio.run(open_loop("127.0.0.1", port, raw, rate=20.0, seconds=0.2))
    summary = result.as_dict()
    assert summary["sent"] == 4
    assert summary["statuses"] == {"0": 4}
    assert summary["errors"] == {"ConnectionRefusedError": 4}
    assert summary["goodput_req_per_s"] == 0.0
