"""What a v2 infer means to a generator, in-process: the two input forms, the outputs, and
the refusals, on the tiny conditional ("fashion") and unconditional ("digits") models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.contract import GeneratorSpec, inspect, to_uint8
from service.errors import BadRequest, ModelNotFound, TooLarge
from service.pipeline import seeding
from service.v2 import infer
from service.v2.infer import Tensor

MAX = 16


@pytest.fixture(scope="module")
def fashion(model_dir: Path) -> GeneratorSpec:
    return inspect(model_dir / "fashion.onnx")


@pytest.fixture(scope="module")
def digits(model_dir: Path) -> GeneratorSpec:
    return inspect(model_dir / "digits.onnx")


def tensor(name: str, data: Any, datatype: str | None = None) -> Tensor:
    array = np.asarray(data)
    kind = datatype or {"f": "FP32", "i": "INT64"}[array.dtype.kind]
    dtype = {"FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "FP64": np.float64}[kind]
    array = array.astype(dtype)
    return Tensor(name, kind, array.shape, array)


def captured() -> tuple[list[list[Tensor]], infer.Render]:
    seen: list[list[Tensor]] = []

    def render(outputs: list[Tensor]) -> bytes:
        seen.append(outputs)
        return b"body"

    return seen, render


def test_the_raw_form_feeds_z_and_label_as_given(fashion: GeneratorSpec) -> None:
    z = np.random.default_rng(1).standard_normal((3, fashion.latent_dim)).astype(np.float32)
    _, render = captured()
    job = infer.plan(fashion, [tensor("z", z), tensor("label", [0, 5, 9])], None, MAX, render)
    rows_z, rows_labels = job.rows(1, 3)
    assert job.n == 3 and rows_z.tobytes() == z[1:3].tobytes()
    assert rows_labels is not None and rows_labels.tolist() == [5, 9]
    assert job.encode_images is not None  # the default output of the raw form is `image`


def test_the_seeded_form_builds_the_rows_samples_builds(fashion: GeneratorSpec) -> None:
    seed, n = 7, 5
    seeds = [seeding.derive(seed, i) for i in range(n)]
    _, render = captured()
    job = infer.plan(fashion, [tensor("seed", seeds)], None, MAX, render)
    expected = seeding.make_rows(seed, 0, n, fashion.latent_dim, fashion.num_classes, None)
    z, labels = job.rows(0, n)
    assert z.tobytes() == expected.z.tobytes()
    assert labels is not None and expected.labels is not None
    assert labels.tolist() == expected.labels.tolist()
    assert job.encode_images is None  # its default output, `pixels`, needs no floats


def test_a_fixed_label_overrides_the_seeded_random_one(fashion: GeneratorSpec) -> None:
    _, render = captured()
    job = infer.plan(fashion, [tensor("seed", [1, 2]), tensor("label", [3, 3])], None, MAX, render)
    assert job.rows(0, 2)[1] is not None and job.rows(0, 2)[1].tolist() == [3, 3]  # type: ignore[union-attr]


def test_outputs_are_rendered_as_asked(digits: GeneratorSpec) -> None:
    seen, render = captured()
    wanted = [("png", True), ("image", None), ("pixels", False)]
    job = infer.plan(digits, [tensor("seed", [4, 5])], wanted, MAX, render)
    images = np.random.default_rng(0).uniform(-1, 1, (2, *digits.image_shape)).astype(np.float32)
    assert job.encode_images is not None and job.encode_images(images) == b"body"
    png, image, pixels = seen[0]
    assert (png.name, png.datatype, png.shape, png.binary) == ("png", "BYTES", (2,), True)
    assert isinstance(png.data, list) and all(p.startswith(b"\x89PNG") for p in png.data)
    assert image.datatype == "FP32" and image.shape == images.shape and image.binary is None
    assert pixels.datatype == "UINT8" and np.array_equal(pixels.data, to_uint8(images))


def test_the_metadata_lists_both_forms_and_the_class_names(fashion: GeneratorSpec) -> None:
    meta = infer.model_metadata(fashion)
    assert [i["name"] for i in meta["inputs"]] == ["z", "seed", "label"]
    assert [o["name"] for o in meta["outputs"]] == ["image", "pixels", "png"]
    assert meta["versions"] == [fashion.sha256]
    assert meta["parameters"]["class_names"] == list(fashion.class_names or ())


def test_a_version_is_the_file_sha256(fashion: GeneratorSpec) -> None:
    infer.check_version(fashion, fashion.sha256)
    infer.check_version(fashion, None)
    with pytest.raises(ModelNotFound, match="has no version '2'"):
        infer.check_version(fashion, "2")


Z8 = np.zeros((2, 8), np.float32)


@pytest.mark.parametrize(
    ("inputs", "wanted", "words"),
    [
        ([tensor("x", [1])], None, "unknown input 'x'"),
        ([tensor("z", Z8), tensor("seed", [1, 2])], None, "not both"),
        ([tensor("label", [1, 2])], None, "not neither"),
        ([tensor("z", Z8)], None, "conditional: z needs label"),
        ([tensor("seed", [1, 2]), tensor("seed", [1, 2])], None, "given twice"),
        ([tensor("seed", [1, 2], "INT32")], None, "must be INT64, not INT32"),
        ([tensor("z", Z8, "FP64"), tensor("label", [1, 2])], None, "must be FP32, not FP64"),
        ([tensor("z", np.zeros((2, 3))), tensor("label", [1, 2])], None, r"shape \[n, 8\]"),
        ([tensor("seed", [[1, 2]])], None, r"shape \[n\]"),
        ([tensor("seed", np.zeros(0, np.int64))], None, "n ≥ 1"),
        ([tensor("seed", [1, 2]), tensor("label", [1])], None, r"shape \[2\]"),
        ([tensor("seed", [1, 2]), tensor("label", [1, 10])], None, "holds 10; classes are 0 .. 9"),
        ([tensor("seed", [1, -2])], None, "negative seed"),
        ([tensor("z", Z8 * np.nan), tensor("label", [1, 2])], None, "NaN"),
        ([tensor("seed", [1])], [("jpeg", None)], "unknown output 'jpeg'"),
        ([tensor("seed", [1])], [("png", None), ("png", True)], "asked for twice"),
    ],
)
def test_inputs_that_do_not_fit_the_model_are_refused(
    fashion: GeneratorSpec, inputs: list[Tensor], wanted: infer.Wanted | None, words: str
) -> None:
    _, render = captured()
    with pytest.raises(BadRequest, match=words):
        infer.plan(fashion, inputs, wanted, MAX, render)


def test_a_label_is_refused_by_an_unconditional_model(digits: GeneratorSpec) -> None:
    _, render = captured()
    with pytest.raises(BadRequest, match="unknown input 'label'"):
        infer.plan(digits, [tensor("seed", [1]), tensor("label", [1])], None, MAX, render)


def test_more_images_than_max_samples_are_too_large(digits: GeneratorSpec) -> None:
    _, render = captured()
    with pytest.raises(TooLarge, match="at most 16"):
        infer.plan(digits, [tensor("seed", list(range(MAX + 1)))], None, MAX, render)
