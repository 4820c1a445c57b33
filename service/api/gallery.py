"""The gallery page at `/`: pick a model, a class, n and a seed, and look at the images.

A static page (service/api/static/gallery.html, .js, .css, shipped as package data: no build
step, no external asset) that talks to the service's own API: `GET /models`,
`POST /samples` (the grid, and one image again from its seed), `POST /interpolate` (a strip
between two picked images). What it does is described in docs/service.md ("Gallery").
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The files /static serves, and their media types: an allow-list, no path from the URL.
STATIC = {"gallery.js": "text/javascript", "gallery.css": "text/css"}


def create_gallery_router() -> APIRouter:
    """GET / (the page) and GET /static/{name} (its script and style sheet)."""
    router = APIRouter(include_in_schema=False)
    page = (STATIC_DIR / "gallery.html").read_text(encoding="utf-8")  # once, at start
    missing = [name for name in STATIC if not (STATIC_DIR / name).is_file()]
    if missing:
        raise RuntimeError(f"the gallery lacks {', '.join(missing)} in {STATIC_DIR}")

    @router.get("/")
    async def gallery() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @router.get("/static/{name}")
    async def static(name: str) -> FileResponse:
        if name not in STATIC:
            raise HTTPException(status_code=404, detail=f"no static file {name!r}")
        return FileResponse(
            STATIC_DIR / name, media_type=STATIC[name], headers={"Cache-Control": "no-cache"}
        )

    return router
