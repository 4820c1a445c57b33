"""Load shedding: a `/samples` request that admission would refuse is answered 503 before
FastAPI routes it.

Under a burst most requests are refusals, and each one costs the event loop what any request
costs on its way through the app (the exception and routing layers, the route's request
object, the exception's way back out) before admission says no. The last refusal of a burst
waits for every refusal before it, so that cost, times the burst, is its latency. This
middleware sits just inside access control (a missing key is still a 401 and a rate limit a
429, first) and answers such a request itself:

- only `POST /samples` with its parameters in the query (a JSON body goes the normal way);
- only when its `n` does not fit now: a quick look at the query's `n` against every model's
  admission first, so a request that fits pays a few microseconds and nothing else;
- then the request is read and checked exactly as the route does (`read_sample_request`:
  parameters, format, model, label), so a bad request still gets its 4xx, never a 503 it
  would not get otherwise; and the refusal is admission's own (`Admission.refusal`), the same
  error, Retry-After and `gan_rejected_total{reason="overload"}` as the route's.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.edge import has_body
from service.errors import ServiceError, error_response
from service.params import SampleModels
from service.routes import read_sample_request
from service.state import ServiceState

_N = re.compile(rb"(?:^|&)n=([0-9]{1,9})(?:&|$)")


class Shedding:
    def __init__(
        self, app: ASGIApp, state: ServiceState, schema: SampleModels, route: BaseRoute
    ) -> None:
        self.app = app
        self.state = state
        self.schema = schema
        self.route = route  # what the metrics label a shed request with: /samples

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/samples"
            and self._may_not_fit(scope["query_string"])
            and not has_body(scope)
        ):
            refusal = await self._refusal(Request(scope, receive))
            if refusal is not None:
                scope["route"] = self.route
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _may_not_fit(self, query: bytes) -> bool:
        """Whether the query's n (if it reads as a plain number) misses room in some model."""
        found = _N.search(query)
        if found is None:
            return False
        n = int(found.group(1))
        return any(not m.pipeline.admission.fits(n) for m in self.state.models.values())

    async def _refusal(self, request: Request) -> ServiceError | None:
        try:
            asked = await read_sample_request(request, self.schema, self.state)
        except ServiceError:
            return None  # the route answers it, with its own error
        pipeline = asked.served.pipeline
        return pipeline.admission.refusal(asked.params.n, pipeline.admission_wait_s)
