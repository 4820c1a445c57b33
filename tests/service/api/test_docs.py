"""/docs works offline: its page references no other host, and every script, style sheet
and icon it loads is served by the service itself (from fastapi-offline's files). That a
browser renders it without one outside request is checked in test_gallery.py, which has a
browser. ReDoc is not served (its bundle loads its logo from a CDN)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from service.api.docs import ASSET_PREFIX, ASSETS
from tests.service.conftest import Server, settings_for

# src and href attributes, and url: '...' (Swagger UI's schema URL).
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.fixture
def server(serve: Callable[..., Server], model_dir: Path) -> Server:
    return serve(settings_for(model_dir))


def references(html: str) -> list[str]:
    return [a or b for a, b in _REFERENCES.findall(html)]


def test_docs_page_references_no_other_host(server: Server) -> None:
    response = server.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    refs = references(response.text)
    assert refs, response.text
    assert all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "http://" not in response.text and "https://" not in response.text


def test_everything_the_docs_page_loads_is_served(server: Server) -> None:
    for ref in references(server.client.get("/docs").text):
        response = server.client.get(ref)
        assert response.status_code == 200, ref
        assert len(response.content) > 0, ref


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_each_docs_asset_has_its_media_type(server: Server, name: str) -> None:
    response = server.client.get(f"{ASSET_PREFIX}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == ASSETS[name]
    assert len(response.content) > 1000


@pytest.mark.parametrize("name", ["index.html", "..%2Fcore.py", "missing.js"])
def test_only_the_listed_assets_are_served(server: Server, name: str) -> None:
    response = server.client.get(f"{ASSET_PREFIX}/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_redoc_is_not_served(server: Server) -> None:
    assert server.client.get("/redoc").status_code == 404


def test_swagger_ui_asks_no_validator_service(server: Server) -> None:
    # Swagger UI's default validator badge sends the schema URL to validator.swagger.io.
    assert '"validatorUrl": null' in server.client.get("/docs").text
