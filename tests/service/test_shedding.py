"""Load shedding (service/shedding.py): while a model's admission is full, a `/samples` query
that would be refused gets admission's 503 before routing; a bad request, one without a key
and one with a JSON body still get what the route says."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from service.params import sample_models
from service.shedding import Shedding
from tests.service.conftest import Server, settings_for
from tests.support import onnx_models as models
from tests.support.gan_serve import poll

KEY = {"X-API-Key": "k-shedding"}


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, slow_iterations: int) -> Iterator[Server]:
    """The slow model (one image per run, each run ~6 × SLOW_RUN_S) with room for 4 images,
    all held by one request for its four runs; API keys on."""
    root = tmp_path_factory.mktemp("shedding")
    models.slow_generator(root / "slow.onnx", iterations=6 * slow_iterations)
    settings = settings_for(
        root, max_batch=1, max_queue=4, max_samples=4, api_keys="k-shedding", drain_timeout_s=1
    )
    srv = Server(settings).start()
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(srv.client.post, "/samples", params={"n": 4}, headers=KEY)
        poll(lambda: srv.metric("gan_admitted_images", model="slow") == 4, timeout=60)
        yield srv
        srv.stop()  # the held request ends with the server
        holder.exception()


def still_full(server: Server) -> None:
    """Each test runs while the first request holds every image (its four runs take about
    24 × SLOW_RUN_S; this whole module's requests, a fraction of a second)."""
    assert server.metric("gan_admitted_images", model="slow") == 4


def test_a_request_that_cannot_fit_now_is_refused_before_the_route(full: Server) -> None:
    still_full(full)
    routed: list[dict[str, Any]] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope)

    samples = Route("/samples", route)  # what the metrics read: the route's path
    shedding = Shedding(
        route,
        state=full.app.state.service,
        schema=sample_models(full.settings),
        route=samples,
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/samples",
        "query_string": b"n=2&format=png",
        "headers": [(b"host", b"test")],
        "app": full.app,
    }
    rejected = full.metric("gan_rejected_total", reason="overload")
    asyncio.run(shedding(scope, receive, send))
    assert routed == []
    assert sent[0]["status"] == 503
    assert int(dict(sent[0]["headers"])[b"retry-after"]) >= 1
    assert json.loads(sent[1]["body"])["error"]["code"] == "overloaded"
    assert scope["route"] is samples  # labels gan_requests_total{route="/samples"}
    assert full.metric("gan_rejected_total", reason="overload") == rejected + 1


def test_the_refusal_through_the_server_is_the_routes_own(full: Server) -> None:
    still_full(full)
    before = full.metric("gan_requests_total", route="/samples", status="503")
    response = full.client.post("/samples", params={"n": 1}, headers=KEY)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert response.json()["error"]["field"] is None
    assert int(response.headers["retry-after"]) >= 1
    assert full.metric("gan_requests_total", route="/samples", status="503") == before + 1


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"n": 1, "format": "bmp"}, 422, "format"),
        ({"n": 5}, 422, "n"),  # beyond GAN_MAX_SAMPLES: a 422 even while full
        ({"n": 1, "model": "nope"}, 404, "model"),
        ({"n": 1, "label": "sneaker"}, 422, "label"),  # the slow model is unconditional
    ],
)
def test_a_bad_request_still_gets_its_own_error_while_full(
    full: Server, params: dict[str, object], status: int, field: str
) -> None:
    still_full(full)
    response = full.client.post("/samples", params=params, headers=KEY)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_a_request_without_a_key_is_refused_401_not_503(full: Server) -> None:
    still_full(full)
    response = full.client.post("/samples", params={"n": 1})
    assert response.status_code == 401


def test_a_json_body_takes_the_routes_way_to_the_same_503(full: Server) -> None:
    still_full(full)
    response = full.client.post("/samples", json={"n": 1}, headers=KEY)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert int(response.headers["retry-after"]) >= 1


def test_an_n_that_is_not_a_plain_number_goes_to_the_route_for_its_422(full: Server) -> None:
    still_full(full)
    response = httpx.post(full.url + "/samples?n=x", headers=KEY)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "n"
