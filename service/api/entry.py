"""The one way into the endpoints that generate images: /samples, /interpolate, v2 infer.

A request to one of their paths (or path templates: `/v2/models/{name}/infer`) is served
here, before FastAPI's routing, whatever its method and however its parameters come (query,
JSON body, v2 tensors): its handler parses the parameters once (`service.api.params`,
`service.v2.tensors`), and that parse is what access control charges, admission admits and
the pipeline generates. FastAPI's routing, its request and exception wrappers and its
exception handlers would cost the event loop about as much again as the rest of such a
request (docs/benchmarks.md, "One entry per endpoint"; for v2 infer, 30 % of a worker's
CPU: "The Open Inference Protocol against Triton"). Everything else goes on to FastAPI.

Each endpoint's `route` is never mounted: it documents the operation in the OpenAPI schema
(`document`) from the same parameter models, and names the route in the request metrics.

    app.add_middleware(Endpoints, endpoints=[samples, interpolate, *v2_infer])
"""

# No `from __future__ import annotations`: FastAPI reads the documented operation's
# annotations at run time, and they refer to `models` in `operation`'s scope.

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Body, FastAPI, Query
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from core.contract import GeneratorSpec
from service.api.labels import resolve_label
from service.api.params import ParamModels, read_params
from service.encoding import formats
from service.encoding.formats import Format
from service.errors import ServiceError
from service.http.edge import has_body
from service.http.errors import error_body, error_response, internal_error_response
from service.pipeline.jobs import Answer, Job
from service.pipeline.served import ServedModel
from service.state import ServiceState

Params = TypeVar("Params", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]
_BODY_DOC = (
    "The same parameters as a JSON object (Content-Type: application/json) instead of the "
    "query; a field may not be in both."
)


@dataclass(frozen=True)
class Endpoint:
    route: APIRoute  # the documented operation (POST); its path (template) is the endpoint's
    handle: Handler  # the POSTs; a path template's values are in `request.path_params`
    not_allowed: Callable[[Request], Response] | None = None  # other methods (default: 405)


class AnswerResponse(Response):
    """A response whose admission permit is given back once its last byte is sent (or the
    sending failed): the images it holds count against the service until then."""

    def __init__(self, answer: Answer, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(answer.body, media_type=media_type, headers=headers)
        self.permit = answer.permit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.permit.release()


def responses(ok: str, json_schema: dict[str, Any], count: str) -> dict[int | str, Any]:
    """The documented answers of an endpoint that generates images: `ok` describes its 200,
    `json_schema` its JSON body, `count` names the parameter that counts its images."""
    return {
        200: {
            "description": ok,
            "content": {
                media: {"schema": json_schema} if fmt == "json" else {}
                for fmt, media in formats.MEDIA_TYPES.items()
            },
        },
        404: {"description": "Unknown model."},
        405: {"description": "Not a POST: the message shows the request to send (Allow: POST)."},
        413: {"description": f"More images than the model can ever hold (names {count})."},
        422: {"description": "Invalid parameter (named in `field`)."},
        429: {"description": "The API key's rate limit (Retry-After)."},
        503: {"description": "Overloaded (Retry-After), not ready or draining."},
        504: {"description": "The request deadline passed."},
    }


def operation(
    path: str, models: ParamModels[Any], doc: str, answers: dict[int | str, Any]
) -> APIRoute:
    """The documented `POST path`: its query and body from `models`. Never mounted: it
    documents the operation and names the route; requests go to the endpoint's handler."""

    def documented(
        query: Annotated[models.query, Query()],  # type: ignore[name-defined]
        body: Annotated[models.body | None, Body(description=_BODY_DOC)] = None,  # type: ignore[name-defined]
    ) -> Response:
        raise NotImplementedError  # a signature for the schema; never called

    documented.__doc__ = doc
    documented.__name__ = path.strip("/").replace("/", "_")
    return APIRoute(path, documented, methods=["POST"], response_class=Response, responses=answers)


class Common(Protocol):
    """The parameters every generating endpoint takes."""

    label: str | None
    model: str | None
    format: Format | None


@dataclass(frozen=True)
class Prepared(Generic[Params]):
    """A request checked up to admission: its parameters (parsed once), its format, its
    model (the service takes work) and its label (a class index of that model)."""

    params: Params
    format: Format
    served: ServedModel
    label: int | None
    arrived: float  # time.monotonic() when its handler began: the deadline counts from here

    @property
    def spec(self) -> GeneratorSpec:
        return self.served.spec


async def prepare(
    request: Request, models: ParamModels[Params], state: ServiceState
) -> Prepared[Params]:
    """The checks every generating endpoint makes first, in this order: the parameters, an
    unacceptable Accept, a service not ready or draining, an unknown model, a bad label."""
    arrived = time.monotonic()
    body = await request.body() if has_body(request.scope) else b""
    params = read_params(
        request.scope["query_string"], body, request.headers.get("content-type"), models
    )
    common: Common = params  # type: ignore[assignment]  # both endpoints' models have these
    chosen = formats.negotiate(common.format, request.headers.get("accept"))
    served = state.model(common.model)
    label = resolve_label(served.spec, common.label)
    return Prepared(params, chosen, served, label, arrived)


async def answer(request: Request, prepared: Prepared[Any], job: Job) -> Answer:
    """Admit and generate `job`; nobody waits any more once the client disconnects."""
    gone = partial(disconnected, request.receive)
    return await prepared.served.pipeline.answer(job, gone, prepared.arrived)


async def disconnected(receive: Receive) -> None:
    """Complete when the client closes the connection (after any body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def method_not_allowed(request: Request) -> Response:
    """405 for anything but POST, with the request to send instead."""
    path, query = request.url.path, request.url.query
    target = f"{request.base_url}{path.lstrip('/')}" + (f"?{query}" if query else "")
    message = (
        f"{path} generates images: use POST, e.g. curl -X POST '{target}' -o out.png "
        f"(parameters in the query or a JSON body)"
    )
    body = error_body("method_not_allowed", message)
    return JSONResponse(body, status_code=405, headers={"Allow": "POST"})


class Endpoints:
    """Pure ASGI middleware: requests to an endpoint's path go to its handler."""

    def __init__(self, app: ASGIApp, endpoints: Sequence[Endpoint]) -> None:
        self.app = app
        fixed = [endpoint for endpoint in endpoints if not endpoint.route.param_convertors]
        self.by_path = {endpoint.route.path: endpoint for endpoint in fixed}
        # Paths with parameters ({name}): tried in turn, after the fixed paths' one lookup.
        self.templates = [endpoint for endpoint in endpoints if endpoint not in fixed]

    def find(self, scope: Scope) -> Endpoint | None:
        """The endpoint of the request's path (its template's values put in the scope)."""
        if scope["type"] != "http":
            return None
        path: str = scope["path"]
        if (endpoint := self.by_path.get(path)) is not None:
            return endpoint
        for endpoint in self.templates:
            if matched := endpoint.route.path_regex.match(path):
                scope["path_params"] = matched.groupdict()
                return endpoint
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.find(scope)
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = endpoint.route  # the request metrics' route label
        request = Request(scope, receive)
        response: Response
        try:
            if scope["method"] == "POST":
                response = await endpoint.handle(request)
            else:
                response = (endpoint.not_allowed or method_not_allowed)(request)
        except ServiceError as error:
            response = error_response(error)
        except Exception as error:  # the app's own last resort, logged once
            response = internal_error_response(error)
        await response(scope, receive, send)


def document(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Put the endpoints' operations into the app's OpenAPI schema beside its routes'."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=[*app.routes, *routes],
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
