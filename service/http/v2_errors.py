"""The Open Inference Protocol's error shape on its routes: `{"error": "message"}`.

Every error the service sends under `/v2` — a handler's, access control's 401 and 429, the
body limit's 413, routing's 404 and 405 — is written first in the service's own shape
(`service.http.errors`); this middleware, outside all of them, rewrites it to the protocol's,
so that v2 clients (`tritonclient`, KServe's) read the message. Other paths pass untouched.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

V2_PREFIX = "/v2"


def protocol_error(body: bytes) -> bytes:
    """The service's `{"error": {"message": ...}}` as `{"error": "..."}`; other bodies as
    they are (already the protocol's, or not JSON at all)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return body
    return json.dumps({"error": str(error.get("message", ""))}).encode()


class V2ErrorShape:
    """Pure ASGI middleware: rewrite error bodies under /v2 to the protocol's shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == V2_PREFIX or path.startswith(V2_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewriting(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is complete
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = protocol_error(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewriting)
