"""Access control: optional API keys, per-key rate limits in images per second, CORS.

With no key configured (`GAN_API_KEYS`, `GAN_API_KEYS_FILE`) every route is open. With keys,
the routes in `PROTECTED` (and `/metrics` when `GAN_METRICS_AUTH`) need
`Authorization: Bearer <key>` or `X-API-Key: <key>`; else 401 in the JSON error shape with
`WWW-Authenticate`. Everything else (probes, the OpenAPI docs, the gallery page itself) stays
open. Keys are compared in constant time, never logged, echoed, or used as a metric label.

`GAN_RATE_LIMIT_IMAGES_PER_S` gives each key a token bucket of `GAN_RATE_LIMIT_BURST` images
refilled at that rate. A request costs the images it makes, charged by its endpoint after the
one parse of its parameters (`Access.charge`), so what is charged is what is generated,
whatever the spelling of the request; a key whose bucket is empty is refused here already,
before any body is read (an `Expect: 100-continue` client is not invited to send one).
Refusals are 429 with `Retry-After`, counted in gan_auth_rejected_total{reason}.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import RateLimited, Unauthorized
from service.http.edge import has_body
from service.http.errors import error_body, send_error
from service.metrics import Metrics
from service.settings import Settings

# Routes that need a key when keys are configured: a path, or a path followed by "/...".
PROTECTED = ("/samples", "/models", "/interpolate", "/v2/models")
# Routes open to all (with `/metrics` unless GAN_METRICS_AUTH): probes (the v2 protocol's
# too), metrics, the docs and schema, the gallery page ("/" itself only) and its static
# files, and the v2 server metadata ("/v2" itself only: its models are protected).
OPEN = (
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/static",
    "/v2",
    "/v2/health",
)
# Roots that stand for themselves alone, not for the paths below them.
ALONE = ("/", "/v2")

# Where the middleware leaves the index of the request's key for its endpoint's charge.
KEY_SCOPE = "ganserve.key"

_CHALLENGE = [(b"www-authenticate", b'Bearer realm="ganserve"')]
_NO_KEY = "an API key is needed: Authorization: Bearer <key> or X-API-Key: <key>"
_BAD_KEY = "the API key is not valid"


def is_under(path: str, roots: Sequence[str]) -> bool:
    """Whether `path` is one of `roots` or below one (a root in ALONE only itself)."""
    return any(
        path == root or (root not in ALONE and path.startswith(root + "/")) for root in roots
    )


class KeyRing:
    """The configured keys; `match` finds a presented key in constant time."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [key.encode() for key in keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def match(self, presented: bytes) -> int | None:
        """The index of the key equal to `presented`; every key is compared, whatever matches."""
        found = None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(key, presented):
                found = index
        return found


def presented_key(scope: Scope) -> bytes | None:
    """The key of `Authorization: Bearer <key>`, else of `X-API-Key`, else None."""
    headers: dict[bytes, bytes] = dict(scope["headers"])
    return key_of(headers.get(b"authorization", b""), headers.get(b"x-api-key", b""))


def key_of(authorization: bytes, api_key: bytes) -> bytes | None:
    """The key of an `authorization` ("Bearer <key>") value, else an `x-api-key` value (HTTP
    headers, gRPC metadata), else None."""
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() == b"bearer" and token.strip():
        return token.strip()
    return api_key.strip() or None


@dataclass
class Bucket:
    tokens: float
    updated: float


class SharedBuckets(Protocol):
    """Buckets kept for every worker process of the service (`service.workers.shared`)."""

    def take(
        self, key: int, images: int, now: float, rate: float, burst: int, at_least: int = 0
    ) -> float: ...


class RateLimiter:
    """One token bucket of `burst` images per key, refilled at `rate` images per second; in
    `shared` buckets when the service has several worker processes (a key's rate is the
    service's)."""

    def __init__(self, rate: float, burst: int, shared: SharedBuckets | None = None) -> None:
        self.rate, self.burst = rate, burst
        self.shared = shared
        self._buckets: dict[int, Bucket] = {}  # by key index: bounded by the configured keys

    def take(self, key: int, images: int, now: float, at_least: int = 0) -> float:
        """Take `images` tokens and return 0, or return the seconds until they would be there;
        `at_least` more must be there, untaken (a check before the cost is known)."""
        if self.shared is not None:
            return self.shared.take(key, images, now, self.rate, self.burst, at_least)
        bucket = self._buckets.setdefault(key, Bucket(float(self.burst), now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        need = max(images, at_least)
        if bucket.tokens >= need:
            bucket.tokens -= images
            return 0.0
        return (need - bucket.tokens) / self.rate


class Access:
    """The keys and the rate limit of one service: who may call, and what it may spend."""

    def __init__(
        self, settings: Settings, metrics: Metrics, shared: SharedBuckets | None = None
    ) -> None:
        self.keys = KeyRing(settings.api_key_values())
        self.metrics = metrics
        self.protected = PROTECTED + (("/metrics",) if settings.metrics_auth else ())
        rate = settings.rate_limit_images_per_s
        burst = settings.rate_limit_burst or settings.max_samples
        self.limiter = RateLimiter(rate, burst, shared) if rate > 0 else None

    def charge(self, scope: Scope, images: int) -> None:
        """Take `images` from the bucket of the request's key, or raise RateLimited. Called by
        an endpoint once its parameters are parsed, before any work."""
        self.charge_key(scope.get(KEY_SCOPE), images)

    def identify(self, presented: bytes | None) -> int | None:
        """The index of the presented key (None when no keys are configured), or raise
        Unauthorized: for front ends without the middleware (gRPC)."""
        if not self.keys:
            return None
        key = None if presented is None else self.keys.match(presented)
        if key is None:
            self.metrics.auth_rejected.labels(reason="unauthorized").inc()
            raise Unauthorized(_NO_KEY if presented is None else _BAD_KEY)
        return key

    def charge_key(self, key: int | None, images: int) -> None:
        """`charge` for a key already identified (None: no keys configured)."""
        if self.limiter is None or key is None:
            return
        wait = self.limiter.take(key, images, time.monotonic())
        if wait > 0:
            raise self.refusal(images, wait)

    def refusal(self, images: int, wait: float) -> RateLimited:
        assert self.limiter is not None
        self.metrics.auth_rejected.labels(reason="rate_limited").inc()
        message = (
            f"rate limit: {self.limiter.rate:g} images/s per key; {images} images "
            f"available in {wait:.1f} s"
        )
        return RateLimited(message, retry_after_s=wait)


class AccessControl:
    """Pure ASGI middleware on the protected routes: a valid key, and a bucket not empty."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        access = self.access
        if (
            scope["type"] != "http"
            or not access.keys
            or not is_under(scope["path"], access.protected)
        ):
            await self.app(scope, receive, send)
            return
        presented = presented_key(scope)
        key = None if presented is None else access.keys.match(presented)
        if key is None:
            access.metrics.auth_rejected.labels(reason="unauthorized").inc()
            message = _NO_KEY if presented is None else _BAD_KEY
            await send_error(send, 401, "unauthorized", message, None, _CHALLENGE)
            return
        limiter = access.limiter
        if limiter is not None and scope["method"] == "POST" and has_body(scope):
            # Its endpoint charges it once its body is parsed; but every request costs at
            # least one image, so with none left it is refused before its body is invited
            # (`Expect: 100-continue`) or read.
            wait = limiter.take(key, 0, time.monotonic(), at_least=1)
            if wait > 0:
                refusal = access.refusal(1, wait)
                retry = str(max(1, math.ceil(wait))).encode()
                headers = [(b"retry-after", retry)]
                await send_error(send, 429, "rate_limited", refusal.message, None, headers)
                return
        scope[KEY_SCOPE] = key
        await self.app(scope, receive, send)


class Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight in the service's JSON error shape (Starlette
    answers it `text/plain` "Disallowed CORS origin")."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode()
        message = reason[:1].lower() + reason[1:]  # "disallowed CORS origin, method"
        kept = {
            k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")
        }
        return JSONResponse(error_body("bad_request", message), response.status_code, kept)


def install_access_control(app: FastAPI, settings: Settings, access: Access) -> None:
    """Add the key check and, if origins are configured, CORS (outside it: preflights carry no
    key). Call before the middleware that must see every request (metrics)."""
    app.add_middleware(AccessControl, access=access)
    if settings.cors_origins:
        app.add_middleware(
            Cors,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
            expose_headers=["X-Seed", "X-Model", "Retry-After"],
        )
    if settings.api_keys or settings.api_keys_file:
        _declare_security(app)


def _declare_security(app: FastAPI) -> None:
    """Put the key schemes into the OpenAPI schema, so /docs can send a key ("Authorize")."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {"type": "http", "scheme": "bearer"}
            schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            for path, operations in schema.get("paths", {}).items():
                if is_under(path, PROTECTED):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
