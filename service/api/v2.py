"""The Open Inference Protocol (KServe v2) over HTTP/REST, on the service's port.

    GET  /v2                                   server metadata
    GET  /v2/health/live | /v2/health/ready    200, or 503 when not ready
    GET  /v2/models/{name}[/versions/{v}]      model metadata (class names in `parameters`)
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

Infer bodies are JSON, or JSON followed by binary tensors (the binary tensor extension:
`Inference-Header-Content-Length`, `binary_data_size`, `binary_data` / `binary_data_output`).
What an infer means is `service.v2.infer`'s; its job goes through the model's pipeline like
a /samples request (admission, batching, deadline, disconnect), is charged to the API key,
and its answer holds its admission permit until its last byte (`AnswerResponse`). Errors on
these routes are `{"error": "message"}` (`service.http.v2_errors`).
"""

from __future__ import annotations

import base64
import importlib.metadata
import time
from functools import partial
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.entry import AnswerResponse, Endpoint, disconnected
from service.http.access import Access
from service.state import ServiceState, Status
from service.v2 import infer, tensors
from service.v2.infer import Tensor

SERVER_NAME = "ganserve"
PREFIX = "/v2"
TAG = "Open Inference Protocol (v2)"
_MODEL_PATHS = ("/models/{name}", "/models/{name}/versions/{version}")
EXTENSIONS = ["binary_tensor_data"]
BINARY_MEDIA_TYPE = "application/octet-stream"


# The protocol's error body, and the answers of each route, for the OpenAPI schema.
_ERROR: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            }
        }
    }
}
Answers = dict[int | str, dict[str, Any]]
_EMPTY_200: Answers = {200: {"description": "Yes.", "content": {}}}
_NOT_READY: Answers = {503: {"description": "Not ready: starting, failed or draining.", **_ERROR}}
_UNKNOWN: Answers = {404: {"description": "Unknown model or version.", **_ERROR}}
_INFER: Answers = {
    200: {
        "description": "The outputs: JSON, or JSON then binary outputs "
        "(Inference-Header-Content-Length).",
        "content": {"application/json": {}, BINARY_MEDIA_TYPE: {}},
    },
    400: {"description": "A request that cannot be read or does not fit the model.", **_ERROR},
    **_UNKNOWN,
    413: {"description": "More images than GAN_MAX_SAMPLES, or a body too large.", **_ERROR},
    429: {"description": "The API key's rate limit (Retry-After).", **_ERROR},
    **_NOT_READY,
    504: {"description": "The request deadline passed.", **_ERROR},
}


def server_metadata() -> dict[str, Any]:
    version = importlib.metadata.version("ganserve")
    return {"name": SERVER_NAME, "version": version, "extensions": EXTENSIONS}


class HttpRender:
    """Writes an infer response (in a run slot's thread): JSON, then any binary outputs.
    `header_length` is the JSON part's length when binary outputs follow it."""

    def __init__(self, model: str, version: str, request_id: str | None, binary: bool) -> None:
        self.head: dict[str, Any] = {"model_name": model, "model_version": version}
        if request_id is not None:
            self.head["id"] = request_id
        self.binary = binary  # binary_data_output: the default of every output
        self.header_length: int | None = None

    def __call__(self, outputs: list[Tensor]) -> bytes:
        described: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        for tensor in outputs:
            entry: dict[str, Any] = {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
            }
            binary = self.binary if tensor.binary is None else tensor.binary
            if binary:
                raw = infer.raw_bytes(tensor)
                entry["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            elif isinstance(tensor.data, list):  # BYTES (PNG) in JSON: base64 text
                entry["parameters"] = {"content_type": "base64"}
                entry["data"] = [base64.b64encode(item).decode("ascii") for item in tensor.data]
            else:
                entry["data"] = tensor.data.ravel().tolist()
            described.append(entry)
        header = tensors.dumps({**self.head, "outputs": described})
        if not chunks:
            return header
        self.header_length = len(header)
        return b"".join([header, *chunks])


def read_inputs(request: tensors.InferRequest, binary: bytes) -> list[Tensor]:
    """The request's inputs, from JSON `data` or from their binary part."""
    raws = tensors.split_binary(request, binary)
    out = []
    for tensor, raw in zip(request.inputs, raws, strict=True):
        if raw is None:
            array = tensors.from_json(tensor)
        else:
            array = tensors.from_raw(tensor.name, tensor.datatype, tensor.shape, raw)
        out.append(Tensor(tensor.name, tensor.datatype, tuple(tensor.shape), array))
    return out


def wanted_outputs(request: tensors.InferRequest) -> list[tuple[str, bool | None]] | None:
    if not request.outputs:
        return None
    out = []
    for output in request.outputs:
        binary = (output.parameters or {}).get("binary_data")
        out.append((output.name, binary if isinstance(binary, bool) else None))
    return out


def create_v2_router(state: ServiceState, access: Access) -> APIRouter:
    """The v2 routes; `access` charges each infer's images to its API key."""
    router = APIRouter(prefix=PREFIX, tags=[TAG])

    @router.get("")
    async def server() -> dict[str, Any]:
        """Server metadata: name, version and the protocol extensions served."""
        return server_metadata()

    @router.get("/health/live", response_class=Response, responses=_EMPTY_200)
    async def live() -> Response:
        """200 while the process serves."""
        return Response(status_code=200)

    @router.get("/health/ready", response_class=Response, responses=_EMPTY_200 | _NOT_READY)
    async def ready() -> Response:
        """200 once every model is loaded and warmed; 503 while starting or draining."""
        status, reason = state.readiness()
        if status is Status.READY:
            return Response(status_code=200)
        return JSONResponse({"error": f"{status.value}: {reason}"}, status_code=503)

    async def metadata(name: str, version: str | None = None) -> dict[str, Any]:
        spec = state.catalog.get(name).spec
        infer.check_version(spec, version)
        return infer.model_metadata(spec)

    async def model_ready(name: str, version: str | None = None) -> Response:
        infer.check_version(state.model(name).spec, version)
        return Response(status_code=200)

    for path in _MODEL_PATHS:
        router.add_api_route(
            path, metadata, methods=["GET"], summary="Model metadata", responses=_UNKNOWN
        )
        router.add_api_route(
            path + "/ready",
            model_ready,
            methods=["GET"],
            summary="Model ready",
            response_class=Response,
            responses=_EMPTY_200 | _UNKNOWN | _NOT_READY,
        )
    return router


def create_v2_infer_endpoints(state: ServiceState, access: Access) -> list[Endpoint]:
    """`POST /v2/models/{name}[/versions/{version}]/infer`, served before FastAPI's routing
    like /samples (`service.api.entry`); `access` charges each infer's images to its API key."""

    async def run_infer(request: Request, name: str, version: str | None = None) -> Response:
        arrived = time.monotonic()
        served = state.model(name)
        spec = served.spec
        infer.check_version(spec, version)
        body = await request.body()
        length = tensors.header_length(
            request.headers.get("inference-header-content-length"), len(body)
        )
        header, binary = (body, b"") if length is None else (body[:length], body[length:])
        parsed = tensors.read_json_request(header)
        inputs = read_inputs(parsed, binary)
        binary_default = (parsed.parameters or {}).get("binary_data_output") is True
        render = HttpRender(spec.name, infer.version(spec), parsed.id, binary_default)
        job = infer.plan(spec, inputs, wanted_outputs(parsed), state.settings.max_samples, render)
        access.charge(request.scope, job.n)
        gone = partial(disconnected, request.receive)
        answer = await served.pipeline.answer(job, gone, arrived)
        if render.header_length is None:
            return AnswerResponse(answer, "application/json", {})
        headers = {"Inference-Header-Content-Length": str(render.header_length)}
        return AnswerResponse(answer, BINARY_MEDIA_TYPE, headers)

    async def handle(request: Request) -> Response:
        params = request.path_params
        return await run_infer(request, params["name"], params.get("version"))

    return [
        Endpoint(
            APIRoute(
                f"{PREFIX}{path}/infer",
                run_infer,
                methods=["POST"],
                summary="Infer",
                response_class=Response,
                responses=_INFER,
                tags=[TAG],
            ),
            handle,
            not_allowed=post_only,
        )
        for path in _MODEL_PATHS
    ]


def post_only(request: Request) -> Response:
    """405 for anything but POST on an infer route."""
    message = f"Method Not Allowed: {request.url.path} takes POST (a v2 inference request)"
    return JSONResponse({"error": message}, status_code=405, headers={"Allow": "POST"})
