"""`/docs` (Swagger UI) from files installed with the service, not from a CDN.

FastAPI's own page loads Swagger UI from a public CDN: a blank page on an air-gapped
machine. The `fastapi-offline` package ships those very files (swagger-ui-bundle.js,
swagger-ui.css, a favicon); these routes serve them under `/docs/assets/` and build the page
with FastAPI's self-hosting helper (`get_swagger_ui_html`, as its "Self-Serving JavaScript
and CSS for docs" guide does), so the browser asks no other host for anything. ReDoc is not
served: its bundle always loads its logo from cdn.redoc.ly. The app is built with
`docs_url=None, redoc_url=None` and calls `install_docs`.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

ASSET_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
# The only files served, and their media types: no directory listing, no path from the URL.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
ASSET_PREFIX = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Add /docs, /docs/oauth2-redirect and /docs/assets/{name} to `app`."""
    missing = [name for name in ASSETS if not (ASSET_DIR / name).is_file()]
    if missing:  # a broken install: say so at start, not as a blank page later
        raise RuntimeError(f"fastapi-offline lacks {', '.join(missing)} in {ASSET_DIR}")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{ASSET_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSET_PREFIX}/favicon.png",
            # No validator badge: it would send the schema's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(ASSET_PREFIX + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(status_code=404, detail=f"no docs asset {name!r}")
        return FileResponse(
            ASSET_DIR / name,
            media_type=ASSETS[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )
