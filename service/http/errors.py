"""The one mapping of errors to HTTP: every 4xx/5xx the service sends has one JSON shape.

    {"error": {"code": "...", "message": "...", "field": "n" | null}}

Domain errors (`service.errors`) map through `_HTTP`; `install_error_handlers` also maps
FastAPI's validation errors, unknown routes and anything unexpected; `send_error` writes the
same shape from ASGI middleware, below FastAPI.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from service.errors import (
    BadRequest,
    Cancelled,
    DeadlineExceeded,
    Draining,
    InferenceFailed,
    InvalidParameter,
    ModelNotFound,
    NotAcceptable,
    NotReady,
    QueueFull,
    RateLimited,
    Retryable,
    ServiceError,
    TooLarge,
    Unauthorized,
)

log = logging.getLogger("service")


# The one place where domain errors become HTTP: status and error code.
_HTTP: dict[type[ServiceError], tuple[int, str]] = {
    BadRequest: (400, "bad_request"),
    InvalidParameter: (422, "invalid_parameter"),
    ModelNotFound: (404, "model_not_found"),
    NotAcceptable: (406, "not_acceptable"),
    NotReady: (503, "not_ready"),
    Draining: (503, "draining"),
    QueueFull: (503, "overloaded"),
    TooLarge: (413, "too_large"),
    DeadlineExceeded: (504, "timeout"),
    InferenceFailed: (500, "inference_failed"),
    Cancelled: (499, "cancelled"),
    RateLimited: (429, "rate_limited"),
    Unauthorized: (401, "unauthorized"),
}

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(error: ServiceError) -> JSONResponse:
    status, code = _HTTP[type(error)]
    headers: dict[str, str] = {}
    if isinstance(error, Retryable):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return JSONResponse(
        error_body(code, error.message, error.field), status_code=status, headers=headers
    )


def internal_error_response(error: Exception) -> JSONResponse:
    """The 500 of an error nothing expected: logged with its traceback, never sent."""
    log.exception("unhandled error", exc_info=error)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def _validation_field(loc: Sequence[Any]) -> str | None:
    # loc is ("query", "n") and the like; the parameter name is the last string in it.
    names = [part for part in loc if isinstance(part, str)]
    return names[-1] if len(names) > 1 else (names[0] if names else None)


def install_error_handlers(app: FastAPI) -> None:
    """Make every 4xx/5xx the service sends use the one error shape."""

    async def on_service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        field = _validation_field(first.get("loc", ()))
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        return JSONResponse(error_body("invalid_parameter", message, field), status_code=422)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        return internal_error_response(exc)

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete JSON error response (the service's one error shape)."""
    body = json.dumps(error_body(code, message, field)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
