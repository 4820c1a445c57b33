"""Bad v2 input over gRPC, table-driven, sent as bytes on a real channel (no client-side
checks in the way): every case ends with INVALID_ARGUMENT, NOT_FOUND or RESOURCE_EXHAUSTED
and a message, never INTERNAL or UNKNOWN or a broken stream, and the server is still ready
after each. (HTTP's table: tests/service/api/test_v2_bad_input.py.)

    python -m pytest tests/service/grpc/test_grpc_bad_input.py -q
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from service.grpc.messages import MESSAGES, SERVICE
from tests.service.conftest import Server
from tests.service.grpc.conftest import grpc_url

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
I64 = struct.pack("<q", 1)


def infer(
    model: str = "digits",
    inputs: list[dict[str, Any]] | None = None,
    raw: list[bytes] | None = None,
    outputs: list[str] | None = None,
    version: str = "",
) -> bytes:
    """A ModelInferRequest's bytes; inputs as dicts (`contents` a dict of its fields)."""
    request = MESSAGES["ModelInferRequest"](model_name=model, model_version=version)
    for spec in inputs or []:
        request.inputs.add(**spec)
    request.raw_input_contents.extend(raw or [])
    for name in outputs or []:
        request.outputs.add(name=name)
    return bytes(request.SerializeToString())


def seed(shape: list[int] | None = None, datatype: str = "INT64", **more: Any) -> dict[str, Any]:
    return {"name": "seed", "datatype": datatype, "shape": shape or [1], **more}


def gigabyte_field() -> bytes:
    """model_name (field 1, length-delimited) declaring 1 GB, followed by 3 bytes."""
    length = 2**30
    varint = bytearray()
    while length > 0x7F:
        varint.append((length & 0x7F) | 0x80)
        length >>= 7
    varint.append(length)
    return b"\x0a" + bytes(varint) + b"abc"


@dataclass(frozen=True)
class Case:
    name: str
    request: bytes
    code: grpc.StatusCode
    words: str
    method: str = "ModelInfer"


CASES = [
    Case("malformed protobuf", b"\xff\xff\xff", INVALID, "not a valid ModelInferRequest"),
    Case("a truncated message", infer(inputs=[seed()], raw=[I64])[:-3], INVALID, "not a valid"),
    Case("a 1 GB declared field", gigabyte_field(), INVALID, "not a valid"),
    Case("malformed metadata request", b"\x0a\x05ab", INVALID, "not a valid", "ModelMetadata"),
    Case("malformed ready request", b"\x12", INVALID, "not a valid", "ModelReady"),
    Case("an unknown model", infer("nope", [seed()], [I64]), NOT_FOUND, "unknown model 'nope'"),
    Case("no model name", infer("", [seed()], [I64]), NOT_FOUND, "model_name is empty"),
    Case(
        "an unknown version",
        infer(inputs=[seed()], raw=[I64], version="9"),
        NOT_FOUND,
        "no version '9'",
    ),
    Case(
        "metadata of an unknown model",
        bytes(MESSAGES["ModelMetadataRequest"](name="x").SerializeToString()),
        NOT_FOUND,
        "unknown model 'x'",
        "ModelMetadata",
    ),
    Case(
        "seed as FP32",
        infer(inputs=[seed(datatype="FP32")], raw=[b"\0" * 4]),
        INVALID,
        "must be INT64, not FP32",
    ),
    Case(
        "an unknown datatype",
        infer(inputs=[seed(datatype="INT128")], raw=[I64]),
        INVALID,
        "unknown datatype",
    ),
    Case(
        "raw bytes that disagree with the shape",
        infer(inputs=[seed([2])], raw=[I64]),
        INVALID,
        "takes 16 bytes",
    ),
    Case(
        "raw contents for some inputs only",
        infer(inputs=[seed(), {**seed(), "name": "z"}], raw=[I64]),
        INVALID,
        "1 raw_input_contents for 2 inputs",
    ),
    Case(
        "contents that disagree with the shape",
        infer(inputs=[seed([3], contents={"int64_contents": [1]})]),
        INVALID,
        "holds 3 values, contents has 1",
    ),
    Case(
        "contents in the wrong field",
        infer(inputs=[seed(contents={"fp32_contents": [1.0]})]),
        INVALID,
        "goes in int64_contents",
    ),
    Case(
        "contents and raw bytes at once",
        infer(inputs=[seed(contents={"int64_contents": [1]})], raw=[I64]),
        INVALID,
        "both contents and raw",
    ),
    Case("a huge dimension", infer(inputs=[seed([2**50])], raw=[I64]), INVALID, "out of range"),
    Case("a negative dimension", infer(inputs=[seed([-3])], raw=[I64]), INVALID, "out of range"),
    Case(
        "an unknown input",
        infer(inputs=[{**seed(), "name": "noise"}], raw=[I64]),
        INVALID,
        "unknown input 'noise'",
    ),
    Case(
        "a negative seed",
        infer(inputs=[seed()], raw=[struct.pack("<q", -1)]),
        INVALID,
        "negative seed",
    ),
    Case(
        "a label out of range",
        infer("fashion", [seed(), {**seed(), "name": "label"}], [I64, struct.pack("<q", 10)]),
        INVALID,
        "holds 10",
    ),
    Case(
        "z holding NaN",
        infer(
            inputs=[{"name": "z", "datatype": "FP32", "shape": [1, 8]}],
            raw=[struct.pack("<8f", *[float("nan")] * 8)],
        ),
        INVALID,
        "NaN",
    ),
    Case(
        "an unknown output",
        infer(inputs=[seed()], raw=[I64], outputs=["jpeg"]),
        INVALID,
        "unknown output 'jpeg'",
    ),
    Case(
        "n over GAN_MAX_SAMPLES",
        infer(inputs=[seed([65])], raw=[I64 * 65]),
        EXHAUSTED,
        "at most 64",
    ),
    Case(
        "a message over the size limit",
        infer(inputs=[seed([9000])], raw=[I64 * 9000]),
        EXHAUSTED,
        "larger than max",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_v2_input_over_grpc_is_refused_with_a_message(grpc_server: Server, case: Case) -> None:
    with grpc.insecure_channel(grpc_url(grpc_server)) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{case.method}")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as caught:
            call(case.request, timeout=30)
        error: Any = caught.value
        assert error.code() == case.code, error.details()
        assert case.words in error.details()
        ready = channel.unary_unary(
            f"/{SERVICE}/ServerReady",
            response_deserializer=MESSAGES["ServerReadyResponse"].FromString,
        )
        assert ready(b"", timeout=30).ready
