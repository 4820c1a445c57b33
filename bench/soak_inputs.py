"""The soak's bad-input corpus: requests gan-serve must refuse with a 4xx, never a 5xx.

A small corpus of its own rather than the bad-input tests' tables: those are tied to their
test server's limits and models (a 64-image cap, a second, unconditional model). Each entry
is the raw bytes of one request sent on its own connection, `Connection: close`; a keyed
entry carries the soak's key, so what is refused is the input, not the missing key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence


def raw(
    method: str,
    target: str,
    key: str | None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """A request as sent: Host and Connection: close, the key, `headers`, the body."""
    lines = [f"{method} {target} HTTP/1.1", "Host: soak", "Connection: close"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def corpus(key: str, max_samples: int, max_body_bytes: int) -> list[tuple[str, bytes]]:
    """(name, request bytes) of every bad input, in the order they are sent."""

    def samples(query: str) -> bytes:
        return raw("POST", f"/samples?{query}", key)

    def body(data: bytes) -> bytes:
        return raw("POST", "/samples", key, [("Content-Type", "application/json")], data)

    head = b"GET /healthz HTTP/1.1\r\nHost: soak\r\n"
    cases = [
        ("n zero", samples("n=0")),
        ("n above max", samples(f"n={max_samples + 1}")),
        ("n not a number", samples("n=abc")),
        ("n 10^30", samples("n=1" + "0" * 30)),
        ("n invalid UTF-8", samples("n=%FF%FE")),
        ("seed negative", samples("seed=-1")),
        ("seed 2^63", samples(f"seed={2**63}")),
        ("format unknown", samples("format=gif")),
        ("model unknown", samples("model=nope")),
        ("model path", samples("model=../../etc/passwd")),
        ("label out of range", samples("label=99")),
        ("label unknown name", samples("label=spaceship")),
        ("Accept nothing servable", raw("POST", "/samples", key, [("Accept", "image/gif")])),
        ("interpolate one step", raw("POST", "/interpolate?from_seed=1&to_seed=2&steps=1", key)),
        ("body not JSON", body(b"{n: 1")),
        ("body a list", body(json.dumps([1, 2]).encode())),
        ("body unknown field", body(json.dumps({"x": 1}).encode())),
        ("body deeply nested", body(b"[" * 2000 + b"]" * 2000)),
        ("body over the limit", body(b" " * (max_body_bytes + 1))),
        ("no key", raw("POST", "/samples?n=1", None)),
        ("wrong key", raw("POST", "/samples?n=1", "not-a-key")),
        ("GET on a POST route", raw("GET", "/samples", key)),
        ("unknown route", raw("GET", "/nope", key)),
        ("dot-dot route", raw("GET", "/static/../../etc/passwd", key)),
        ("binary garbage", b"\x00\x01\x02\xff\xfe\r\n\r\n"),
        ("TLS hello on plain HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64)),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("without Host", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"),
        ("header without colon", head + b"NoColon\r\n\r\n"),
        ("40 KB header", head + b"X-A: " + b"a" * 40_000 + b"\r\n\r\n"),
        ("Content-Length negative", samples("n=1")[:-2] + b"Content-Length: -1\r\n\r\n"),
        (
            "Content-Length over the limit",
            samples("n=1")[:-2] + b"Content-Length: 99999999\r\n\r\n",
        ),
        (
            "chunk size not hex",
            samples("n=1")[:-2] + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
    ]
    # `samples()` already carries a Content-Length: 0 line; the cases that bring their own
    # length or coding replace it (two lengths would be another case).
    return [(name, _one_length(data)) for name, data in cases]


def _one_length(data: bytes) -> bytes:
    head, sep, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    lengths = [i for i, line in enumerate(lines) if line.lower().startswith(b"content-length:")]
    chunked = any(line.lower().startswith(b"transfer-encoding:") for line in lines)
    drop = lengths[:-1] if not chunked else lengths
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return b"\r\n".join(kept) + sep + rest
