"""The v2 gRPC server: grpcio's asyncio server on GAN_GRPC_PORT, in the app's event loop.

Started by the app's lifespan (`service.app`) when GAN_GRPC_PORT is set, before the models
load (ServerLive answers at once, ServerReady says false until they are ready); stopped
after the drain, so that on SIGTERM calls in flight are answered while new ModelInfer calls
are refused UNAVAILABLE, like HTTP's 503. With several worker processes each binds the port
with SO_REUSEPORT, like their HTTP sockets; alone, it binds it exclusively, so that a port
in use is an error at start, not a silent share.

Around every call (`_handler`): a request that is not a valid message is INVALID_ARGUMENT
(grpcio would say INTERNAL), the API key from the `authorization` (Bearer) or `x-api-key`
metadata where keys are configured (all but the server-level calls), each domain error as
its status code with its message, and the call counted in the request metrics under its
method.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

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
from service.grpc.messages import MESSAGES, SERVICE
from service.grpc.servicer import Serialised, Servicer
from service.http.access import Access, key_of
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service")

# After the drain, how long calls still in flight may take to be sent before the server stops.
STOP_GRACE_S = 5.0

# The one mapping of domain errors to gRPC status codes (HTTP's: service.http.errors).
STATUS: dict[type[ServiceError], grpc.StatusCode] = {
    BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidParameter: grpc.StatusCode.INVALID_ARGUMENT,
    NotAcceptable: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    Draining: grpc.StatusCode.UNAVAILABLE,
    QueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    InferenceFailed: grpc.StatusCode.INTERNAL,
    Cancelled: grpc.StatusCode.CANCELLED,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
}

Call = Callable[[Any, int | None], Awaitable[Any]]


class _Malformed:
    """What a request that is not a valid message deserialises to."""

    def __init__(self, error: str) -> None:
        self.error = error


def _reader(message: str) -> Callable[[bytes], Any]:
    cls = MESSAGES[message]

    def read(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return _Malformed(f"the request is not a valid {message}: {exc}")

    return read


def _handler(
    method: str, call: Call, request: str, protected: bool, access: Access, metrics: Metrics
) -> grpc.RpcMethodHandler:
    route = f"/{SERVICE}/{method}"

    async def behaviour(message: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if isinstance(message, _Malformed):
                raise BadRequest(message.error)
            key = None
            if protected:
                metadata = dict(context.invocation_metadata() or ())
                presented = key_of(_text(metadata, "authorization"), _text(metadata, "x-api-key"))
                key = access.identify(presented)
            response = await call(message, key)
            if isinstance(response, Serialised):
                # Called when the call ends, sent or not (a client gone, the server stopped).
                context.add_done_callback(lambda _: response.sent())
                return response.body
            return response
        except ServiceError as error:
            code = STATUS[type(error)]
            if isinstance(error, Retryable):
                retry = str(max(1, math.ceil(error.retry_after_s)))
                context.set_trailing_metadata((("retry-after", retry),))
            await context.abort(code, error.message)
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in %s", route, exc_info=error)
            await context.abort(code, "internal server error")
        except BaseException:  # cancelled by the client (or its deadline)
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            count, duration = metrics.request_series(route, code.name)
            count.inc()
            duration.observe(time.perf_counter() - started)

    # ModelInfer's response is serialised already (in the run slot): it is sent as it is.
    def serialise(response: Any) -> bytes:
        return response if isinstance(response, bytes) else bytes(response.SerializeToString())

    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=_reader(request), response_serializer=serialise
    )


def _text(metadata: dict[str, Any], key: str) -> bytes:
    value = metadata.get(key, b"")
    return value.encode() if isinstance(value, str) else bytes(value)


def _handlers(servicer: Servicer, access: Access, metrics: Metrics) -> grpc.GenericRpcHandler:
    calls: list[tuple[str, Call, bool]] = [
        ("ServerLive", servicer.server_live, False),
        ("ServerReady", servicer.server_ready, False),
        ("ServerMetadata", servicer.server_metadata, False),
        ("ModelReady", servicer.model_ready, True),
        ("ModelMetadata", servicer.model_metadata, True),
        ("ModelInfer", servicer.model_infer, True),
    ]
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            method: _handler(method, call, f"{method}Request", protected, access, metrics)
            for method, call, protected in calls
        },
    )


async def start(
    settings: Settings, servicer: Servicer, access: Access, metrics: Metrics, shared_port: bool
) -> grpc.aio.Server:
    """Serve the calls on settings.host:settings.grpc_port (TLS with the HTTP port's files);
    `shared_port`: bind it with SO_REUSEPORT (one server per worker process)."""
    assert settings.grpc_port is not None
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1 if shared_port else 0),
            # The body limit of HTTP: a larger message is RESOURCE_EXHAUSTED, unread.
            ("grpc.max_receive_message_length", max(settings.max_body_bytes, 1024)),
        ]
    )
    server.add_generic_rpc_handlers((_handlers(servicer, access, metrics),))
    address = f"{settings.host}:{settings.grpc_port}"
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
        server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
    else:
        server.add_insecure_port(address)
    await server.start()
    log.info("v2 gRPC on %s", address)
    return server


async def stop(server: grpc.aio.Server) -> None:
    """Stop after the drain: calls still in flight get STOP_GRACE_S to be sent."""
    await server.stop(STOP_GRACE_S)
