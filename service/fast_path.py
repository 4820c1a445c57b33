"""The fast path: a `POST /samples` with its parameters in the query is served before routing.

`/samples` is the hot path, and most requests carry their parameters in the query. Through
FastAPI they also pass its routing, its request and exception wrappers and its exception
handlers, which cost the event loop about as much again as the rest of their path: one image
per request (64 connections) ran 1.2× faster served here, and in a burst of 300 large
requests the slowest refusal came twice as fast (docs/benchmarks.md, "The fast path").

The middleware sits behind the access control (a request without a valid key still gets its
401, one over its rate its 429), the body limit and the request metrics, and takes only a POST
/samples without a body. It reads the query (`params.read_query_params`) and answers with
`sampling.answer`, the function the FastAPI route calls after reading a JSON body: the same
checks in the same order, the same errors in the one JSON error shape (an unexpected error is
the same logged 500). The FastAPI route stays: it serves requests with a JSON body and
documents the operation in the OpenAPI schema.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.edge import has_body
from service.errors import ServiceError, error_response, internal_error_response
from service.params import SampleModels, read_query_params
from service.sampling import answer
from service.state import ServiceState


class SamplesFastPath:
    def __init__(
        self, app: ASGIApp, state: ServiceState, schema: SampleModels, route: BaseRoute
    ) -> None:
        self.app = app
        self.state = state
        self.schema = schema
        self.route = route  # set on the scope: the request metrics' route label
        self.path: str = getattr(route, "path", "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
            or has_body(scope)
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        request = Request(scope, receive)
        response: Response
        try:
            params = read_query_params(dict(request.query_params), self.schema)
            response = await answer(self.state, params, request)
        except ServiceError as error:
            response = error_response(error)
        except Exception as error:  # the app's own last resort, as its handler does
            response = internal_error_response(error)
        await response(scope, receive, send)
