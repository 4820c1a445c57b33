"""Around every HTTP request: its count and duration, and `Connection: close` while draining.

`gan_requests_total{route, status}` counts what the client was answered by the app: a
request the connection layer refused before the app answered (a bad chunk, a slow body, a
client gone mid-body) was answered there, with its own status, and is not counted here as
a 500. A response refused before routing (a 401 of the access control) is labelled with the
route its path matches; a path no route matches is `other`, so no raw path is ever a label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics


def route_label(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The template of the route that served (or would serve) the request, else "other"."""
    route = scope.get("route")
    if route is None:
        route = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
    return getattr(route, "path", None) or "other"


class RequestLifecycle:
    """Pure ASGI middleware, outermost: counts and times each request; while the service
    drains, every answer says `Connection: close` so keep-alive clients move on."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        draining: Callable[[], bool],
        routes: Callable[[], Sequence[BaseRoute]],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.draining = draining
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        draining = self.draining

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if draining():
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            status = status or 500  # Starlette's outermost handler answers it with a 500
            raise
        finally:
            if status is not None:
                count, duration = self.metrics.request_series(
                    route_label(scope, self.routes()), status
                )
                count.inc()
                duration.observe(time.perf_counter() - started)
