"""The one way into the endpoints that generate images: `/samples` and `/interpolate`.

A request to one of their paths is served here, before FastAPI's routing, whatever its method
and however its parameters come (query or JSON body): its handler parses the parameters once
(`service.api.params`), and that parse is what access control charges, admission admits and
the pipeline generates. FastAPI's routing, its request and exception wrappers and its
exception handlers would cost the event loop about as much again as the rest of such a
request (docs/benchmarks.md, "One entry per endpoint"). Everything else goes on to FastAPI.

Each endpoint's `route` is never mounted: it documents the operation in the OpenAPI schema
(`document`) from the same parameter models, and names the route in the request metrics.

    app.add_middleware(Endpoints, endpoints=[samples_endpoint, interpolate_endpoint])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ServiceError
from service.http.errors import error_body, error_response, internal_error_response
from service.pipeline.scheduler import Answer

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    route: APIRoute  # the documented operation (POST); its path is the endpoint's
    handle: Handler


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
        self.by_path = {endpoint.route.path: endpoint for endpoint in endpoints}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.by_path.get(scope["path"]) if scope["type"] == "http" else None
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
                response = method_not_allowed(request)
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
