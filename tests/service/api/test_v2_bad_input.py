"""Bad v2 input over HTTP, table-driven, over real sockets to a real server: every case is
answered 4xx with the protocol's `{"error": "message"}`, never a 5xx or a dropped
connection, and the server is still ready after each. (gRPC's table:
tests/service/grpc/test_grpc_bad_input.py.)

    python -m pytest tests/service/api/test_v2_bad_input.py -q
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.service.conftest import Server

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

DIGITS = "/v2/models/digits/infer"
FASHION = "/v2/models/fashion/infer"
GB = 2**30


def seed(data: Any, shape: list[int] | None = None, datatype: str = "INT64") -> dict[str, Any]:
    shape = shape if shape is not None else [len(data)]
    return {"name": "seed", "datatype": datatype, "shape": shape, "data": data}


def z(rows: int, width: int = 8, datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "z", "datatype": datatype, "shape": [rows, width], "data": [0] * rows * width}


def binary(name: str, datatype: str, shape: list[int], size: int) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    status: int
    words: str  # in the message
    path: str = DIGITS
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


def js(inputs: list[dict[str, Any]] | None = None, **fields: Any) -> bytes:
    return json.dumps({"inputs": inputs if inputs is not None else [], **fields}).encode()


def framed(
    header: dict[str, Any], raw: bytes, length: int | None = None
) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + raw, {
        "Inference-Header-Content-Length": str(len(text) if length is None else length)
    }


def bin_case(
    name: str,
    header: dict[str, Any],
    raw: bytes,
    status: int,
    words: str,
    length: int | None = None,
) -> Case:
    body, headers = framed(header, raw, length)
    return Case(name, body, status, words, headers=headers)


I64 = struct.pack("<q", 1)
CASES = [
    Case("malformed JSON", b'{"inputs": [', 400, "not valid JSON"),
    Case("empty body", b"", 400, "not valid JSON"),
    Case("not UTF-8", b"\xff\xfe\x00", 400, "not valid JSON"),
    Case("a list, not an object", b"[]", 400, "request"),
    Case("no inputs field", b"{}", 400, "inputs"),
    Case("inputs not a list", b'{"inputs": 5}', 400, "inputs"),
    Case(
        "input without datatype", js([{"name": "seed", "shape": [1], "data": [1]}]), 400, "datatype"
    ),
    Case("a fractional dimension", js([seed([1], shape=[1.5])]), 400, "shape"),  # type: ignore[list-item]
    Case("an unknown datatype", js([seed([1], datatype="FP99")]), 400, "unknown datatype"),
    Case("seed as FP32", js([seed([1.0], datatype="FP32")]), 400, "must be INT64, not FP32"),
    Case("z as INT64", js([z(1, datatype="INT64")]), 400, "must be FP32, not INT64"),
    Case("seed as BYTES", js([seed(["1"], datatype="BYTES")]), 400, "not a numeric"),
    Case(
        "shape and data disagree", js([seed([1, 2], shape=[3])]), 400, "holds 3 values, data has 2"
    ),
    Case("more data than the shape", js([seed([1, 2, 3], shape=[2])]), 400, "more than 2"),
    Case("strings for numbers", js([seed(["a"])]), 400, "not INT64"),
    Case("a fraction for an INT64", js([seed([1.5])]), 400, "not INT64"),
    Case("an INT64 overflow", js([seed([2**64])]), 400, "not INT64"),
    Case("z of the wrong width", js([z(2, width=3)]), 400, "shape [n, 8]"),
    Case("z of three dimensions", js([{**z(1), "shape": [1, 8, 1]}]), 400, "shape [n, 8]"),
    Case("no rows", js([seed([], shape=[0])]), 400, "n ≥ 1"),
    Case("a negative dimension", js([seed([1], shape=[-1])]), 400, "out of range"),
    Case("a huge dimension", js([seed([1], shape=[2**50])]), 400, "out of range"),
    Case("both z and seed", js([z(1), seed([1])]), 400, "not both"),
    Case("no inputs at all", js([]), 400, "not neither"),
    Case("an unknown input", js([{**seed([1]), "name": "noise"}]), 400, "unknown input 'noise'"),
    Case(
        "a label for an unconditional model",
        js([seed([1]), {**seed([1]), "name": "label"}]),
        400,
        "unknown input 'label'",
    ),
    Case("z without its label", js([z(1)]), 400, "needs label", path=FASHION),
    Case(
        "a label out of range",
        js([seed([1]), {**seed([10]), "name": "label"}]),
        400,
        "holds 10",
        path=FASHION,
    ),
    Case("a negative seed", js([seed([-1])]), 400, "negative seed"),
    Case("an input twice", js([seed([1]), seed([1])]), 400, "given twice"),
    Case(
        "an unknown output",
        js([seed([1])], outputs=[{"name": "jpeg"}]),
        400,
        "unknown output 'jpeg'",
    ),
    Case(
        "an output twice",
        js([seed([1])], outputs=[{"name": "png"}, {"name": "png"}]),
        400,
        "asked for twice",
    ),
    Case("n over GAN_MAX_SAMPLES", js([seed(list(range(65)))]), 413, "at most 64"),
    Case(
        "an unknown model",
        js([seed([1])]),
        404,
        "unknown model 'nope'",
        path="/v2/models/nope/infer",
    ),
    Case(
        "an unknown version",
        js([seed([1])]),
        404,
        "no version '3'",
        path="/v2/models/digits/versions/3/infer",
    ),
    Case("an unknown route", b"", 404, "Not Found", path="/v2/models/digits/explain"),
    Case("infer by GET", b"", 405, "Method Not Allowed", method="GET"),
    Case("a body over GAN_MAX_BODY_BYTES", js([seed([1] * 40000)]), 413, "larger than"),
    bin_case(
        "a 1 GB Inference-Header-Content-Length",
        {"inputs": [seed([1])]},
        b"",
        400,
        "Inference-Header-Content-Length",
        length=GB,
    ),
    bin_case(
        "a header length that is no number",
        {"inputs": [seed([1])]},
        b"",
        400,
        "Inference-Header-Content-Length",
        length=-5,
    ),
    bin_case(
        "a header length that cuts the JSON",
        {"inputs": [seed([1])]},
        b"",
        400,
        "not valid JSON",
        length=5,
    ),
    bin_case(
        "a binary size past the body",
        {"inputs": [binary("seed", "INT64", [1], 16)]},
        I64,
        400,
        "goes past",
    ),
    bin_case(
        "a 1 GB binary size", {"inputs": [binary("seed", "INT64", [1], GB)]}, I64, 400, "goes past"
    ),
    bin_case(
        "bytes beyond the binary sizes",
        {"inputs": [binary("seed", "INT64", [1], 8)]},
        I64 * 2,
        400,
        "beyond what",
    ),
    bin_case(
        "a binary size that disagrees with the shape",
        {"inputs": [binary("seed", "INT64", [2], 8)]},
        I64,
        400,
        "takes 16 bytes",
    ),
    bin_case(
        "a negative binary size",
        {"inputs": [binary("seed", "INT64", [1], -8)]},
        I64,
        400,
        "whole number",
    ),
    bin_case(
        "a binary z holding NaN",
        {"inputs": [binary("z", "FP32", [1, 8], 32)]},
        struct.pack("<8f", *[float("nan")] * 8),
        400,
        "NaN",
    ),
    bin_case(
        "binary and JSON data at once",
        {"inputs": [{**binary("seed", "INT64", [1], 8), "data": [1]}]},
        I64,
        400,
        "both JSON data",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_v2_input_is_a_4xx_with_the_protocols_error(server: Server, case: Case) -> None:
    response = server.client.request(
        case.method, case.path, content=case.body, headers=case.headers
    )
    assert response.status_code == case.status, response.text
    error = response.json()
    assert list(error) == ["error"] and isinstance(error["error"], str), error
    assert case.words in error["error"]
    assert server.client.get("/v2/health/ready").status_code == 200


def test_a_1_gb_declared_body_is_refused_before_it_is_read(server: Server) -> None:
    head = (
        f"POST {DIGITS} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {GB}\r\n\r\n"
    ).encode()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(head + b'{"inputs": [')
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "error": f"request body larger than {server.settings.max_body_bytes} bytes"
    }
    assert server.client.get("/v2/health/ready").status_code == 200
