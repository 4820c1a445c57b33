"""Access control over a real server: API keys (header or bearer, from the environment or a
file), 401 in the JSON shape with WWW-Authenticate, open probes and docs, per-key rate limits
(429 + Retry-After), CORS off unless configured, the rejection metric, and keys kept secret."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from service.app import create_app
from service.http.access import OPEN, PROTECTED, is_under
from service.settings import Settings
from tests.service.conftest import Server, settings_for

KEY = "k-3f9a1c7e5b2d4680"
OTHER_KEY = "k-0c1d2e3f4a5b6c7d"
FILE_KEY = "k-from-the-file-0001"
DATA_ROUTES = [
    ("POST", "/samples?n=1"),
    ("GET", "/models"),
    ("POST", "/interpolate?from_seed=1&to_seed=2&steps=2"),
]
OPEN_ROUTES = [
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/",
    "/static/gallery.js",
    "/metrics",
]


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(f"# one key per line\n\n  {FILE_KEY}  \n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def keyed(model_dir: Path, key_file: Path) -> Iterator[Server]:
    settings = settings_for(
        model_dir,
        default_model="fashion",
        api_keys=f"{KEY},{OTHER_KEY}",
        api_keys_file=key_file,
        rate_limit_images_per_s=8,
    )
    srv = Server(settings).start()
    yield srv
    srv.stop()


def call(server: Server, method: str, path: str, **headers: str) -> object:
    return server.client.request(method, path, headers=headers)


@pytest.mark.parametrize(("method", "path"), DATA_ROUTES)
def test_data_routes_without_a_key_are_401_json_with_a_challenge(
    keyed: Server, method: str, path: str
) -> None:
    response = keyed.client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ganserve"'
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and "X-API-Key" in error["message"]


def test_a_wrong_key_is_401_and_never_echoed(keyed: Server) -> None:
    wrong = "k-wrong-0000000000000"
    for headers in ({"X-API-Key": wrong}, {"Authorization": f"Bearer {wrong}"}):
        response = keyed.client.get("/models", headers=headers)
        assert response.status_code == 401
        assert wrong not in response.text and KEY not in response.text
        assert response.json()["error"]["message"] == "the API key is not valid"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer   {OTHER_KEY}"},
        {"X-API-Key": KEY},
        {"X-API-Key": FILE_KEY},
    ],
    ids=["bearer", "bearer-any-case", "x-api-key", "key-from-file"],
)
def test_a_valid_key_opens_the_data_routes(keyed: Server, headers: dict[str, str]) -> None:
    for method, path in DATA_ROUTES:
        response = keyed.client.request(method, path, headers=headers)
        assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize("path", OPEN_ROUTES)
def test_probes_docs_gallery_and_metrics_stay_open(keyed: Server, path: str) -> None:
    assert keyed.client.get(path).status_code == 200


def route_paths(routes: Iterable[object]) -> Iterator[str]:
    """Every route's path, through included routers (FastAPI nests them)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from route_paths(inner.routes)
        else:
            yield getattr(route, "path", "")


def test_every_route_is_either_protected_or_documented_open(model_dir: Path) -> None:
    app = create_app(settings_for(model_dir))
    paths = set(route_paths(app.routes)) | set(app.openapi()["paths"])
    assert {"/samples", "/models", "/healthz", "/", "/metrics"} <= paths
    for path in paths:
        assert is_under(path, PROTECTED) != is_under(path, OPEN), path


# Every spelling of a request that could charge one number and generate another: a parameter
# twice (both orders), numeric forms, query and body together, /interpolate's body.
BYPASSES = [
    ("/samples?n=1&n=64&format=npy", None),
    ("/samples?n=64&n=1&format=npy", None),
    ("/samples?n=64.0&format=npy", None),
    ("/samples?n=6.4e1&format=npy", None),
    ("/samples?n=%2064&format=npy", None),
    ("/samples?n=0x40&format=npy", None),
    ("/samples?n=1&format=npy", {"n": 64}),
    ("/samples?format=npy", {"n": 64.0}),
    ("/samples?format=npy", {"n": "64"}),
    ("/interpolate?from_seed=1&to_seed=2&steps=2&steps=64&format=npy", None),
    ("/interpolate?from_seed=1&to_seed=2&steps=64.0&format=npy", None),
    ("/interpolate?steps=2&format=npy", {"from_seed": 1, "to_seed": 2, "steps": 64}),
]


@pytest.mark.parametrize(("path", "body"), BYPASSES)
def test_a_request_is_charged_what_it_generates_or_refused_whatever_its_spelling(
    serve: Callable[..., Server], model_dir: Path, path: str, body: dict[str, object] | None
) -> None:
    # 1 image/s, a burst of 64: after 63 images, one more request of any spelling may make
    # at most the one image left.
    server = serve(settings_for(model_dir, api_keys=KEY, rate_limit_images_per_s=1))
    headers = {"X-API-Key": KEY}
    spend = server.client.post("/samples?n=63&format=npy", headers=headers)
    assert spend.status_code == 200
    extra = {} if body is None else {"content": json.dumps(body)}
    kind = {} if body is None else {"Content-Type": "application/json"}
    response = server.client.post(path, headers=headers | kind, **extra)
    if response.status_code == 200:
        images = np.load(io.BytesIO(response.content), allow_pickle=False)
        assert images.shape[0] <= 1, (path, body)
    else:
        assert response.status_code in (422, 429), response.text
        assert response.json()["error"]["field"] in ("n", "steps", None), response.text


def test_a_key_gets_no_more_than_its_rate_and_burst_over_a_window(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    # 10 images/s, a burst of 16: every spelling at once for 2 s.
    settings = settings_for(
        model_dir, api_keys=KEY, rate_limit_images_per_s=10, rate_limit_burst=16, max_samples=16
    )
    server = serve(settings)
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    started, made = time.monotonic(), 0
    honest = [
        ("/samples?n=4&format=npy", None),
        ("/samples?format=npy", {"n": 4}),
        ("/interpolate?format=npy", {"from_seed": 1, "to_seed": 2, "steps": 4}),
    ]
    while time.monotonic() - started < 2.0:
        for path, body in [*BYPASSES, *honest]:
            extra = {} if body is None else {"content": json.dumps(body)}
            response = server.client.post(path, headers=headers, **extra)
            if response.status_code == 200:
                made += np.load(io.BytesIO(response.content), allow_pickle=False).shape[0]
    elapsed = time.monotonic() - started
    assert 16 <= made <= 10 * elapsed + 16, (made, elapsed)


def test_a_key_with_an_empty_bucket_is_refused_before_its_body_is_read(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = serve(settings_for(model_dir, api_keys=KEY, rate_limit_images_per_s=1))
    headers = {"X-API-Key": KEY}
    assert server.client.post("/samples?n=64&format=npy", headers=headers).status_code == 200
    with socket.create_connection(server.address) as sock:
        sock.sendall(
            b"POST /samples HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 429"), head[:100]  # no "100 Continue" first


def test_expect_100_continue_without_a_key_gets_401_and_no_100_continue(keyed: Server) -> None:
    with socket.create_connection(keyed.address, timeout=10) as sock:
        sock.sendall(
            b"POST /samples?n=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 8\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]  # the first line: no 100 first
    assert b"100 Continue" not in answer


def test_a_refused_cors_preflight_is_json(serve: Callable[..., Server], model_dir: Path) -> None:
    server = serve(settings_for(model_dir, cors_origins="http://a.example"))
    refused = server.client.options(
        "/samples",
        headers={"Origin": "http://b.example", "Access-Control-Request-Method": "PUT"},
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {
        "error": {"code": "bad_request", "message": "disallowed CORS origin, method", "field": None}
    }
    assert "access-control-allow-origin" not in refused.headers


def test_the_openapi_schema_declares_the_key_schemes(keyed: Server) -> None:
    schema = keyed.client.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert schema["paths"]["/samples"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_metrics_need_a_key_when_metrics_auth_is_set(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = serve(settings_for(model_dir, api_keys=KEY, metrics_auth=True))
    assert server.client.get("/metrics").status_code == 401
    assert server.client.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    assert server.client.get("/healthz").status_code == 200


def test_a_key_over_its_rate_is_429_with_retry_after_and_other_keys_go_on(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    # 1 image/s, a bucket of max_samples (64) images: one request of 64 empties it.
    server = serve(
        settings_for(model_dir, api_keys=f"{KEY},{OTHER_KEY}", rate_limit_images_per_s=1)
    )
    mine, theirs = {"X-API-Key": KEY}, {"X-API-Key": OTHER_KEY}
    assert server.client.post("/samples?n=64&format=npy", headers=mine).status_code == 200
    refused = server.client.post("/samples?n=10", headers=mine)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 9 <= int(refused.headers["retry-after"]) <= 11  # 10 images at 1 image/s
    assert server.client.post("/samples?n=10", headers=theirs).status_code == 200
    assert server.metric("gan_auth_rejected_total", reason="rate_limited") == 1


def test_a_json_body_is_charged_its_n(serve: Callable[..., Server], model_dir: Path) -> None:
    server = serve(settings_for(model_dir, api_keys=KEY, rate_limit_images_per_s=1))
    headers = {"X-API-Key": KEY}
    body = json.dumps({"n": 64, "format": "npy"})
    ok = server.client.post(
        "/samples", content=body, headers=headers | {"Content-Type": "application/json"}
    )
    assert ok.status_code == 200, ok.text
    assert server.client.post("/samples?n=1", headers=headers).status_code == 429


def test_rejections_are_counted_by_reason_never_by_key(keyed: Server) -> None:
    before = keyed.metric("gan_auth_rejected_total", reason="unauthorized")
    keyed.client.get("/models", headers={"X-API-Key": "nope"})
    keyed.client.get("/models")
    assert keyed.metric("gan_auth_rejected_total", reason="unauthorized") == before + 2
    text = keyed.client.get("/metrics").text
    assert KEY not in text and FILE_KEY not in text


def test_keys_are_not_in_the_settings_repr_or_the_log(
    serve: Callable[..., Server], model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(model_dir, api_keys=KEY, access_log=True, log_level="debug")
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert KEY not in settings.model_dump_json()
    with caplog.at_level(logging.DEBUG):
        server = serve(settings)
        server.client.get("/models", headers={"X-API-Key": KEY})
        server.client.get("/models", headers={"Authorization": f"Bearer {KEY}x"})
    assert caplog.records and KEY not in caplog.text


def test_cors_is_off_by_default(keyed: Server) -> None:
    preflight = keyed.client.options(
        "/samples",
        headers={"Origin": "http://a.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 401  # an OPTIONS like any request: no key, no entry
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_answers_the_configured_origins_only(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = serve(settings_for(model_dir, api_keys=KEY, cors_origins="http://a.example"))
    preflight = server.client.options(
        "/samples",
        headers={
            "Origin": "http://a.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        },
    )
    assert preflight.status_code == 200  # no key needed: browsers send none with a preflight
    assert preflight.headers["access-control-allow-origin"] == "http://a.example"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    allowed = server.client.get("/models", headers={"Origin": "http://a.example", "X-API-Key": KEY})
    assert allowed.headers["access-control-allow-origin"] == "http://a.example"
    assert "x-seed" in allowed.headers["access-control-expose-headers"].lower()
    other = server.client.get("/models", headers={"Origin": "http://b.example", "X-API-Key": KEY})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"rate_limit_images_per_s": 5}, "GAN_API_KEYS"),
        ({"api_keys": KEY, "rate_limit_burst": 10}, "rate_limit_burst"),
        ({"api_keys_file": Path("/nonexistent/keys")}, "cannot read the API key file"),
    ],
)
def test_incoherent_access_settings_are_refused(
    model_dir: Path, overrides: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        settings_for(model_dir, **overrides)


def test_an_empty_key_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "keys.txt"
    empty.write_text("# no keys yet\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="holds no key"):
        Settings(model_dir=model_dir, api_keys_file=empty)
