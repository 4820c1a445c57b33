"""bench/wrk.py reads the JSON line that its Lua script's done() hook prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import wrk

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

# Recorded from `wrk -t1 -c2 -d1s -s <lua_script(Request('/x'))>` against a server that
# answered 501 to every POST.
RECORDED = (Path(__file__).parent / "wrk-output.txt").read_text()


def test_parse_reads_counts_statuses_and_percentiles_from_the_recorded_output() -> None:
    result = wrk.parse(RECORDED)
    assert result.requests == 1231
    assert result.seconds == pytest.approx(1.003693)
    assert result.statuses == {501: 1231}
    assert (result.ok, result.non_2xx) == (0, 1231)
    assert result.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert result.latency_ms["p99"] == pytest.approx(9.713)
    assert result.requests_per_s == pytest.approx(1231 / 1.003693)


def test_parse_refuses_output_without_the_json_line() -> None:
    with pytest.raises(ValueError, match="BENCH_WRK_JSON"):
        wrk.parse(RECORDED.split(wrk.MARKER)[0])


def test_lua_script_writes_every_body_byte_as_a_decimal_escape() -> None:
    script = wrk.lua_script(wrk.Request("/x", body=b'{"n": 1}\n\x00', headers={"A": "b"}))
    escaped = "".join(f"\\{byte}" for byte in b'{"n": 1}\n\x00')
    assert f'wrk.body = "{escaped}"' in script
    assert 'wrk.headers["A"] = "b"' in script
