"""Early refusal: a `/samples` request its model has no room for gets its 503 before routing.

Under overload most requests are refusals, and a refusal that goes through FastAPI's routing,
the endpoint and the exception handlers costs the event loop about as much again as the rest
of its path: in a burst of 300 large requests the last refusals waited 100 ms and more behind
the others (py-spy and the burst probe, docs/benchmarks.md). This middleware answers them
first.

It sits behind the access control (a request without a valid key still gets its 401, one over
its rate its 429) and takes only a POST /samples with no body whose query is valid: it reads
the query (`read_query_params`), resolves the model, format and label (`sampling.plan`) and
asks the model's admission (`Admission.refusal`), the same functions the endpoint calls in the
same order, and answers with the 503 the endpoint would give. Everything else goes on to the
app, which answers it as before: a body, an invalid parameter, an unknown model, a request
too large ever to fit (413), a service not ready or draining, a request that fits, and every
request while `GAN_ADMISSION_WAIT_MS` > 0 (it waits for room instead).
"""

from __future__ import annotations

from starlette.datastructures import Headers, QueryParams
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.edge import has_body
from service.errors import QueueFull, ServiceError, error_response
from service.params import SampleModels, read_query_params
from service.sampling import plan
from service.state import ServiceState

SAMPLES_PATH = "/samples"


class EarlyRefusal:
    def __init__(
        self, app: ASGIApp, state: ServiceState, schema: SampleModels, route: BaseRoute
    ) -> None:
        self.app = app
        self.state = state
        self.schema = schema
        self.route = route  # set on the scope of a refusal: the request metrics' route label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == SAMPLES_PATH
            and not has_body(scope)
            and (refused := await self.refusal(scope)) is not None
        ):
            scope["route"] = self.route
            await error_response(refused)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def refusal(self, scope: Scope) -> QueueFull | None:
        """The 503 of a valid query-only request whose model cannot take it now, else None."""
        try:
            params = read_query_params(dict(QueryParams(scope["query_string"])), self.schema)
            planned = plan(self.state, params, Headers(scope=scope).get("accept"))
        except ServiceError:
            return None  # the endpoint answers it
        pipeline = planned.served.pipeline
        if pipeline.admission_wait_s > 0 or params.n > pipeline.admission.largest_request:
            return None
        return await pipeline.admission.refusal(params.n)
