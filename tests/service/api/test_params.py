"""`/samples` parameters (service/api/params.py): a JSON body as an alternative to the query, with
the same rules, and labels matched as people type them.

HTTP behaviour runs against a real server; `resolve_label` and `class_keys` are also tested
directly on the Fashion-MNIST class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from service.api.labels import class_keys, resolve_label
from service.errors import InvalidParameter
from tests.service.conftest import Server
from tests.support.onnx_models import CLASS_NAMES


def error_field(response: Any) -> str | None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    return error["field"]


# -- JSON body --------------------------------------------------------------------------------


def test_a_json_body_asks_for_the_same_images_as_the_query(server: Server) -> None:
    query = server.client.post(
        "/samples", params={"n": 3, "seed": 7, "label": "sneaker", "model": "fashion"}
    )
    body = server.client.post(
        "/samples", json={"n": 3, "seed": 7, "label": "sneaker", "model": "fashion"}
    )
    assert query.status_code == body.status_code == 200
    assert body.json() == query.json()
    assert len(body.json()["images"]) == 3


def test_query_and_body_may_share_the_work(server: Server) -> None:
    response = server.client.post(
        "/samples", params={"model": "digits", "format": "npy"}, json={"n": 2, "seed": 1}
    )
    assert response.status_code == 200
    assert response.headers["x-model"] == "digits" and response.headers["x-seed"] == "1"
    assert response.headers["content-type"] == "application/x-npy"


def test_a_json_label_may_be_a_class_index(server: Server) -> None:
    response = server.client.post("/samples", json={"n": 2, "label": 7, "model": "fashion"})
    assert [image["label"] for image in response.json()["images"]] == [7, 7]


@pytest.mark.parametrize("field", ["n", "seed", "label", "model", "format"])
def test_a_field_in_both_query_and_body_is_a_422_naming_it(server: Server, field: str) -> None:
    values = {"n": 2, "seed": 3, "label": "bag", "model": "fashion", "format": "json"}
    response = server.client.post(
        "/samples", params={field: values[field]}, json={field: values[field]}
    )
    assert error_field(response) == field
    assert "both" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": "4"}, "n"),
        ({"n": 4.5}, "n"),
        ({"n": True}, "n"),
        ({"n": 0}, "n"),
        ({"n": 65}, "n"),
        ({"seed": -1}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"label": [1]}, "label"),
        ({"model": 3}, "model"),
        ({"format": "gif"}, "format"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_body_field_of_the_wrong_type_or_range_is_a_422_naming_it(
    server: Server, body: dict[str, Any], field: str
) -> None:
    assert error_field(server.client.post("/samples", json=body)) == field


@pytest.mark.parametrize("content", [b"{bad json", b"[1, 2]", b'"n"'])
def test_a_body_that_is_not_a_json_object_is_a_422_naming_the_body(
    server: Server, content: bytes
) -> None:
    response = server.client.post(
        "/samples", content=content, headers={"Content-Type": "application/json"}
    )
    assert error_field(response) == "body"


def test_null_fields_count_as_absent(server: Server) -> None:
    response = server.client.post("/samples", params={"seed": 5}, json={"seed": None, "n": 1})
    assert response.status_code == 200 and response.headers["x-seed"] == "5"


def test_the_body_is_documented_in_the_openapi_schema(server: Server) -> None:
    schema = server.client.get("/openapi.json").json()
    operation = schema["paths"]["/samples"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    ref = next(option["$ref"] for option in body["anyOf"] if "$ref" in option)
    model = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(model["properties"]) == {"n", "seed", "label", "model", "format"}
    assert model["additionalProperties"] is False
    n = next(option for option in model["properties"]["n"]["anyOf"] if "maximum" in option)
    assert (n["minimum"], n["maximum"]) == (1, 64)
    assert {p["name"] for p in operation["parameters"]} == {"n", "seed", "label", "model", "format"}


# -- labels as people type them ---------------------------------------------------------------


@dataclass(frozen=True)
class Fashion:
    name: str = "fashion"
    conditional: bool = True
    num_classes: int | None = 10
    class_names: tuple[str, ...] | None = tuple(CLASS_NAMES)


@pytest.mark.parametrize(
    ("label", "index"),
    [
        ("ankle-boot", 9),
        ("Ankle_Boot", 9),
        ("ankle boot", 9),
        ("  ANKLE   BOOT ", 9),
        ("ankleboot", 9),
        ("t-shirt", 0),
        ("T_Shirt", 0),
        ("tshirt", 0),
        ("top", 0),
        ("t-shirt/top", 0),
        ("T-shirt top", 0),
        ("sneaker", 7),
        ("7", 7),
        ("+7", 7),
        ("007", 7),
    ],
)
def test_class_names_match_as_people_type_them(label: str, index: int) -> None:
    assert resolve_label(Fashion(), label) == index


def test_a_part_two_classes_share_names_neither() -> None:
    keys = class_keys(["Boot/low", "Shoe/low", "Top"])
    assert keys["bootlow"] == 0 and keys["boot"] == 0 and keys["shoe"] == 1
    assert "low" not in keys
    # a full name wins over another class's part
    assert class_keys(["A/top", "Top"])["top"] == 1


@pytest.mark.parametrize("label", ["--5", "²", "5" * 5000, "-1", "10", "boots", "", "t-shirts"])
def test_anything_else_is_a_422_naming_label_and_listing_the_classes(label: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        resolve_label(Fashion(), label)
    assert raised.value.field == "label"
    message = raised.value.message
    assert len(message) < 400
    if "out of range" not in message:
        assert "0 T-shirt/top" in message and "9 Ankle boot" in message


@pytest.mark.parametrize("label", ["--5", "²", "5" * 5000, "ankle~boot"])
def test_odd_labels_are_422_over_http_never_500(server: Server, label: str) -> None:
    response = server.client.post("/samples", params={"n": 1, "model": "fashion", "label": label})
    assert error_field(response) == "label"


def test_an_unconditional_model_takes_no_label(server: Server) -> None:
    response = server.client.post("/samples", json={"n": 1, "model": "digits", "label": "bag"})
    assert error_field(response) == "label"
    assert "unconditional" in response.json()["error"]["message"]
