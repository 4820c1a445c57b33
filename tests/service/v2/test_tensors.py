"""The v2 tensor reader, in-process: JSON and raw tensors, the binary extension's framing,
and a clear BadRequest for each way they can disagree."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from service.errors import BadRequest
from service.v2 import tensors
from service.v2.tensors import InputTensor


def request(*inputs: dict[str, object], **fields: object) -> tensors.InferRequest:
    return tensors.read_json_request(json.dumps({"inputs": list(inputs), **fields}).encode())


def test_json_data_flat_or_nested_reads_row_major() -> None:
    flat = InputTensor(name="z", datatype="FP32", shape=[2, 2], data=[1, 2.5, 3, 4])
    nested = InputTensor(name="z", datatype="FP32", shape=[2, 2], data=[[1, 2.5], [3, 4]])
    for tensor in (flat, nested):
        array = tensors.from_json(tensor)
        assert array.dtype == np.float32 and array.shape == (2, 2)
        assert array.tolist() == [[1.0, 2.5], [3.0, 4.0]]


def test_raw_bytes_read_little_endian_in_shape() -> None:
    values = np.arange(6, dtype="<i8")
    array = tensors.from_raw("seed", "INT64", [3, 2], values.tobytes())
    assert array.dtype == np.int64 and array.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_float32_json_round_trips_bit_for_bit() -> None:
    z = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    text = tensors.dumps({"data": z.tolist()})
    data = json.loads(text)["data"]
    back = tensors.from_json(InputTensor(name="z", datatype="FP32", shape=[64], data=data))
    assert back.tobytes() == z.tobytes()


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        (
            InputTensor(name="z", datatype="FP32", shape=[3], data=[1, 2]),
            "holds 3 values, data has 2",
        ),
        (InputTensor(name="z", datatype="FP32", shape=[1], data=[1, 2]), "more than 1"),
        (InputTensor(name="z", datatype="FP32", shape=[2], data=["a", 1]), "not FP32"),
        (InputTensor(name="s", datatype="INT64", shape=[1], data=[1.5]), "not INT64"),
        (InputTensor(name="s", datatype="INT64", shape=[1], data=[2**64]), "not INT64"),
        (InputTensor(name="s", datatype="INT64", shape=[1], data=[True]), "not INT64"),
        (InputTensor(name="z", datatype="FP32", shape=[1], data=[None]), "not FP32"),
        (InputTensor(name="z", datatype="FP99", shape=[1], data=[1]), "unknown datatype"),
        (InputTensor(name="z", datatype="BYTES", shape=[1], data=["x"]), "not a numeric"),
        (InputTensor(name="z", datatype="FP32", shape=[-1], data=[1]), "out of range"),
        (InputTensor(name="z", datatype="FP32", shape=[2**41, 2**41], data=[1]), "out of range"),
        (InputTensor(name="z", datatype="FP32", shape=[1]), "no data"),
    ],
)
def test_json_data_that_does_not_fit_is_refused(tensor: InputTensor, words: str) -> None:
    with pytest.raises(BadRequest, match=words) as caught:
        tensors.from_json(tensor)
    assert caught.value.message.startswith(f"input {tensor.name}") or "datatype" in words


def test_raw_bytes_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(BadRequest, match="7 bytes of data, but FP32 \\[2\\] takes 8 bytes"):
        tensors.from_raw("z", "FP32", [2], b"\0" * 7)


def test_split_binary_cuts_the_binary_part_by_declared_sizes() -> None:
    parsed = request(
        {"name": "a", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 8}},
        {"name": "b", "datatype": "INT64", "shape": [1], "data": [5]},
        {"name": "c", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
    )
    assert tensors.split_binary(parsed, b"A" * 8 + b"C" * 4) == [b"A" * 8, None, b"C" * 4]


@pytest.mark.parametrize(
    ("size", "binary", "words"),
    [
        (8, b"x" * 4, "goes past"),
        (4, b"x" * 8, "beyond what"),
        (2**30, b"x" * 8, "goes past"),
        (-1, b"", "whole number"),
        ("8", b"x" * 8, "whole number"),
    ],
)
def test_binary_sizes_that_lie_are_refused(size: object, binary: bytes, words: str) -> None:
    parsed = request(
        {"name": "a", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": size}}
    )
    with pytest.raises(BadRequest, match=words):
        tensors.split_binary(parsed, binary)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "request"),
        (b"{}", "inputs"),
        (b'{"inputs": [{"name": "z"}]}', "inputs.0.datatype"),
        (b'{"inputs": [{"name": "z", "datatype": "FP32", "shape": [1.5]}]}', "inputs.0.shape.0"),
        (b'{"inputs": [{"name": "z", "datatype": "FP32", "shape": [true]}]}', "inputs.0.shape.0"),
        (b'{"inputs": [], "id": 7}', "id"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_json_requests_name_the_fault(header: bytes, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        tensors.read_json_request(header)


@pytest.mark.parametrize(
    ("value", "ok"), [("12", 12), (None, None), ("0", 0), ("1073741824", None), ("x", None)]
)
def test_the_header_length_must_lie_within_the_body(value: str | None, ok: int | None) -> None:
    if ok is None and value is not None:
        with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
            tensors.header_length(value, 100)
    else:
        assert tensors.header_length(value, 100) == ok


def test_bytes_tensors_are_length_prefixed() -> None:
    raw = tensors.bytes_tensor([b"ab", b""])
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)
