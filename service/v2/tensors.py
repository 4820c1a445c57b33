"""Tensors of the Open Inference Protocol (KServe v2): their datatypes, the JSON request's
shape, and its tensors read from JSON `data` or from raw bytes (the binary tensor extension
over HTTP, `raw_input_contents` over gRPC), each refused with a message that names the
tensor and what is wrong (`BadRequest`).

Pure: no HTTP, no gRPC. `service.api.v2` (HTTP) and `service.grpc` read requests through it;
`service.v2.infer` says what the tensors mean to a generator.

    request = read_json_request(header)            # the JSON part of an HTTP infer request
    array = from_raw("z", "FP32", [2, 8], raw)     # one binary tensor, checked and shaped
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from service.errors import BadRequest

# The protocol's datatypes and their NumPy types (BYTES: length-prefixed byte strings).
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
BYTES = "BYTES"
DATATYPES = (*DTYPES, BYTES, "BF16")
# Dimensions above this are refused before any arithmetic on them: no tensor the service
# reads comes near it, and a product of a few of them stays a small Python int.
MAX_DIM = 2**40


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class InputTensor(_Strict):
    """One input of a JSON infer request: `data` in JSON, or its bytes elsewhere."""

    name: StrictStr
    datatype: StrictStr
    shape: list[StrictInt]
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestedOutput(_Strict):
    name: StrictStr
    parameters: dict[str, Any] | None = None


class InferRequest(_Strict):
    """An infer request's JSON (over gRPC, its protobuf is read into the same)."""

    id: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None = None


def read_json_request(header: bytes) -> InferRequest:
    """The JSON part of an HTTP infer request, or BadRequest naming the first fault."""
    try:
        return InferRequest.model_validate_json(header)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "json_invalid":
            raise BadRequest(f"the request is not valid JSON: {first['msg']}") from None
        raise BadRequest(f"{where or 'request'}: {first['msg']}") from None


def check_shape(name: str, datatype: str, shape: Sequence[int]) -> int:
    """The element count of a tensor of this shape (every dimension 0 .. MAX_DIM)."""
    if datatype not in DATATYPES:
        raise BadRequest(f"input {name}: unknown datatype {datatype!r}")
    if any(d < 0 or d > MAX_DIM for d in shape):
        raise BadRequest(f"input {name}: shape {list(shape)} has a dimension out of range")
    return math.prod(shape)


def dtype_of(name: str, datatype: str) -> np.dtype[Any]:
    if datatype not in DTYPES:
        raise BadRequest(f"input {name}: datatype {datatype} is not a numeric tensor here")
    return DTYPES[datatype]


def from_json(tensor: InputTensor) -> npt.NDArray[Any]:
    """An input's JSON `data` (flat or nested, row-major) as an array of its shape."""
    name, datatype = tensor.name, tensor.datatype
    count = check_shape(name, datatype, tensor.shape)
    dtype = dtype_of(name, datatype)
    if tensor.data is None:
        raise BadRequest(f"input {name}: no data (give `data`, or binary_data_size and bytes)")
    data = tensor.data if isinstance(tensor.data, list) else [tensor.data]
    try:
        items = _flatten(data, count)
        if len(items) != count:
            has = f"more than {count}" if len(items) > count else str(len(items))
            raise BadRequest(
                f"input {name}: shape {list(tensor.shape)} holds {count} values, data has {has}"
            )
        _check_kinds(items, dtype)
        flat = np.asarray(items, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(f"input {name}: data is not {datatype}: {exc}") from None
    return flat.reshape(tuple(tensor.shape))


def _check_kinds(items: list[Any], dtype: np.dtype[Any]) -> None:
    """JSON numbers of the datatype's kind: NumPy would truncate 1.5 to an INT64 1."""
    if dtype.kind == "b":
        wrong = next((x for x in items if not isinstance(x, bool)), None)
    elif dtype.kind in "iu":
        wrong = next((x for x in items if isinstance(x, bool) or not isinstance(x, int)), None)
    else:
        wrong = next((x for x in items if isinstance(x, bool)), None)
    if wrong is not None:
        raise TypeError(f"element {wrong!r}")


def _flatten(data: list[Any], limit: int) -> list[Any]:
    """The scalars of a nested list, in order; more than `limit` of them is a mistake
    already (stopped early, so that a huge nested list is not walked)."""
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if isinstance(item, (str, dict)) or item is None:
                raise TypeError(f"{type(item).__name__} element {str(item)[:20]!r}")
            out.append(item)
            if len(out) > limit:
                return out
        else:
            stack.pop()
    return out


def from_raw(name: str, datatype: str, shape: Sequence[int], raw: bytes) -> npt.NDArray[Any]:
    """An input's raw little-endian bytes (binary extension, raw_input_contents) as an
    array of its shape; their length must be exactly what the shape and datatype need."""
    count = check_shape(name, datatype, shape)
    dtype = dtype_of(name, datatype)
    need = count * dtype.itemsize
    if len(raw) != need:
        raise BadRequest(
            f"input {name}: {len(raw)} bytes of data, but {datatype} {list(shape)} "
            f"takes {need} bytes"
        )
    flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)
    return flat.reshape(tuple(shape))


def split_binary(request: InferRequest, binary: bytes) -> list[bytes | None]:
    """Each input's bytes from the binary part of an HTTP request (inputs with
    `binary_data_size`, in order), or None for one whose data is JSON; the sizes must add up
    to the binary part exactly."""
    out: list[bytes | None] = []
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            out.append(None)
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {tensor.name}: binary_data_size must be a whole number")
        if offset + size > len(binary):
            raise BadRequest(
                f"input {tensor.name}: binary_data_size {size} goes past the "
                f"{len(binary)} bytes of binary data"
            )
        if tensor.data is not None:
            raise BadRequest(f"input {tensor.name}: both JSON data and binary_data_size")
        out.append(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary) - offset} bytes of binary data beyond what the inputs' "
            "binary_data_size claim"
        )
    return out


def header_length(value: str | None, body_length: int) -> int | None:
    """Inference-Header-Content-Length: the JSON part's length, within the body."""
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) > body_length:
        raise BadRequest(
            f"Inference-Header-Content-Length {value[:20]!r} is not a length within the "
            f"{body_length}-byte body"
        )
    return int(value)


def bytes_tensor(items: Sequence[bytes]) -> bytes:
    """A BYTES tensor's raw form: each element's 4-byte little-endian length, then it."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def dumps(value: Any) -> bytes:
    """Compact JSON (floats as Python writes them: a float32 reads back the same)."""
    return json.dumps(value, separators=(",", ":")).encode()
