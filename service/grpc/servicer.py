"""The v2 gRPC calls: ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata and
ModelInfer, on the same state, pipeline and access control as HTTP.

Each call is one coroutine taking its request message; the wrapper in `service.grpc.server`
checks the key, maps errors to status codes and counts the call. ModelInfer reads the
tensors (`raw_input_contents`, else each input's `contents`), plans the job
(`service.v2.infer`), charges the key's bucket, and has the pipeline answer it; the response
message is serialised in the run slot with the rest of the encoding, and sent as it is.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.errors import BadRequest, Draining, ModelNotFound, NotReady
from service.grpc.messages import MESSAGES
from service.http.access import Access
from service.state import ServiceState, Status
from service.v2 import infer, tensors
from service.v2.infer import Tensor

EXTENSIONS = ["binary_tensor_data"]  # the same server as over HTTP: one answer to "what is it"
# Each datatype's field of InferTensorContents.
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class GrpcRender:
    """Writes a ModelInferResponse (in a run slot's thread): every output as raw contents."""

    def __init__(self, model: str, version: str, request_id: str) -> None:
        self.model, self.version, self.request_id = model, version, request_id

    def __call__(self, outputs: list[Tensor]) -> bytes:
        response = MESSAGES["ModelInferResponse"](
            model_name=self.model, model_version=self.version, id=self.request_id
        )
        for tensor in outputs:
            response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            response.raw_output_contents.append(infer.raw_bytes(tensor))
        data: bytes = response.SerializeToString()
        return data


def read_inputs(request: Any) -> list[Tensor]:
    """The request's inputs: all from `raw_input_contents` (one per input, in order), or all
    from their `contents`."""
    raws = list(request.raw_input_contents)
    if raws and len(raws) != len(request.inputs):
        raise BadRequest(
            f"{len(raws)} raw_input_contents for {len(request.inputs)} inputs: give one each"
        )
    out = []
    for index, tensor in enumerate(request.inputs):
        shape = tuple(tensor.shape)
        if raws:
            if tensor.HasField("contents"):
                raise BadRequest(f"input {tensor.name}: both contents and raw_input_contents")
            array = tensors.from_raw(tensor.name, tensor.datatype, shape, raws[index])
        else:
            array = from_contents(tensor.name, tensor.datatype, shape, tensor.contents)
        out.append(Tensor(tensor.name, tensor.datatype, shape, array))
    return out


def from_contents(
    name: str, datatype: str, shape: tuple[int, ...], contents: Any
) -> npt.NDArray[Any]:
    count = tensors.check_shape(name, datatype, shape)
    dtype = tensors.dtype_of(name, datatype)
    values = getattr(contents, CONTENTS[datatype])
    others = [f.name for f, _ in contents.ListFields() if f.name != CONTENTS[datatype]]
    if others:
        raise BadRequest(
            f"input {name}: {datatype} data goes in {CONTENTS[datatype]}, not {others[0]}"
        )
    if len(values) != count:
        raise BadRequest(
            f"input {name}: shape {list(shape)} holds {count} values, contents has {len(values)}"
        )
    try:
        return np.array(values, dtype=dtype).reshape(shape)
    except OverflowError as exc:  # an int_contents value beyond INT8/INT16 and the like
        raise BadRequest(f"input {name}: {exc}") from None


@dataclass(frozen=True)
class Serialised:
    """A response already serialised (in the run slot), and what to do once it is sent: the
    admission permit of its bytes is held until the call ends, as HTTP holds it to the last
    byte."""

    body: bytes
    sent: Callable[[], None]


class Servicer:
    """The calls, on one service's state; `access` charges ModelInfer's images."""

    def __init__(self, state: ServiceState, access: Access) -> None:
        self.state = state
        self.access = access
        self.version = importlib.metadata.version("ganserve")

    async def server_live(self, request: Any, key: int | None) -> Any:
        return MESSAGES["ServerLiveResponse"](live=True)

    async def server_ready(self, request: Any, key: int | None) -> Any:
        ready = self.state.readiness()[0] is Status.READY
        return MESSAGES["ServerReadyResponse"](ready=ready)

    async def server_metadata(self, request: Any, key: int | None) -> Any:
        return MESSAGES["ServerMetadataResponse"](
            name="ganserve", version=self.version, extensions=EXTENSIONS
        )

    async def model_ready(self, request: Any, key: int | None) -> Any:
        spec = self.state.catalog.get(request.name).spec  # unknown: NOT_FOUND
        infer.check_version(spec, request.version)
        try:
            self.state.model(request.name)
        except (NotReady, Draining):
            return MESSAGES["ModelReadyResponse"](ready=False)
        return MESSAGES["ModelReadyResponse"](ready=True)

    async def model_metadata(self, request: Any, key: int | None) -> Any:
        spec = self.state.catalog.get(request.name).spec
        infer.check_version(spec, request.version)
        meta = infer.model_metadata(spec)
        # The message has no `parameters`: the class names are HTTP's metadata (and /models).
        return MESSAGES["ModelMetadataResponse"](
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=meta["inputs"],
            outputs=meta["outputs"],
        )

    async def model_infer(self, request: Any, key: int | None) -> Serialised:
        arrived = time.monotonic()
        if not request.model_name:
            raise ModelNotFound("model_name is empty: name a model")
        served = self.state.model(request.model_name)
        spec = served.spec
        infer.check_version(spec, request.model_version)
        inputs = read_inputs(request)
        wanted = [(output.name, None) for output in request.outputs] or None
        render = GrpcRender(spec.name, infer.version(spec), request.id)
        job = infer.plan(spec, inputs, wanted, self.state.settings.max_samples, render)
        self.access.charge_key(key, job.n)
        # A client that cancels (or whose deadline passes) cancels this coroutine: the
        # pipeline drops its rows then, as for an HTTP disconnect.
        answer = await served.pipeline.answer(job, None, arrived)
        return Serialised(answer.body, answer.permit.release)
