"""The ONNX contract (core/contract.py): reading a file against it, its format version,
the pixel conversion and the grid layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from core import contract
from core.contract import ModelError
from tests.support import onnx_models


def _set_metadata(path: Path, **values: str) -> None:
    model = onnx.load(path)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **values})
    onnx.save(model, path)


def test_inspect_reads_the_contract_from_graph_and_metadata(model_dir: Path) -> None:
    path = model_dir / "fashion.onnx"
    spec = contract.inspect(path)
    assert spec.name == "fashion" and spec.path == path
    assert spec.latent_dim == 8 and spec.image_shape == (1, 28, 28)
    assert spec.conditional and spec.num_classes == 10
    assert spec.class_names == tuple(onnx_models.CLASS_NAMES)
    assert spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.metadata["format_version"] == contract.FORMAT_VERSION
    assert (spec.arch, spec.dataset) == ("mlp", "test")


def test_an_unconditional_model_has_no_classes(model_dir: Path) -> None:
    spec = contract.inspect(model_dir / "digits.onnx")
    assert (spec.conditional, spec.num_classes, spec.class_names) == (False, None, None)


def test_name_falls_back_to_the_file_stem(tmp_path: Path) -> None:
    path = onnx_models.mlp_generator(tmp_path / "stem-name.onnx")
    model = onnx.load(path)
    del model.metadata_props[:]
    onnx.save(model, path)
    assert contract.inspect(path).name == "stem-name"


def test_a_non_generator_is_refused_with_one_line_naming_the_file(tmp_path: Path) -> None:
    path = onnx_models.not_a_generator(tmp_path / "relu.onnx")
    with pytest.raises(ModelError) as caught:
        contract.inspect(path)
    message = str(caught.value)
    assert str(path) in message and "not a generator" in message and "\n" not in message


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(ModelError, match=r"junk\.onnx: not an ONNX model"):
        contract.inspect(path)


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("latent_dim", "9", "latent_dim"),
        ("image_shape", "[1, 28, 27]", "image_shape"),
        ("conditional", "false", "conditional"),
        ("class_names", '["a", "b"]', "class_names"),
        ("num_classes", "0", "num_classes"),
        ("name", "bad name", "model name"),
    ],
)
def test_metadata_that_contradicts_the_graph_is_refused(
    tmp_path: Path, key: str, value: str, complaint: str
) -> None:
    path = onnx_models.mlp_generator(tmp_path / "m.onnx", conditional=True)
    _set_metadata(path, **{key: value})
    with pytest.raises(ModelError, match=complaint):
        contract.inspect(path)


def test_conditional_metadata_is_read_case_insensitively(tmp_path: Path) -> None:
    path = onnx_models.mlp_generator(tmp_path / "m.onnx", conditional=True)
    _set_metadata(path, conditional="True")
    assert contract.inspect(path).conditional


def test_conditional_model_needs_its_classes(tmp_path: Path) -> None:
    path = onnx_models.mlp_generator(tmp_path / "m.onnx", conditional=True, classes=None)
    with pytest.raises(ModelError, match="num_classes"):
        contract.inspect(path)


def test_weights_in_an_external_data_file_are_refused(tmp_path: Path) -> None:
    path = onnx_models.mlp_generator(tmp_path / "m.onnx")
    model = onnx.load(path)
    onnx.save(model, path, save_as_external_data=True, size_threshold=0, location="m.data")
    with pytest.raises(ModelError, match="external data file"):
        contract.inspect(path)


@pytest.mark.parametrize("version", ["1", "1.3", None])
def test_this_major_format_version_or_none_is_read(tmp_path: Path, version: str | None) -> None:
    path = onnx_models.mlp_generator(tmp_path / "m.onnx")
    model = onnx.load(path)
    kept = {p.key: p.value for p in model.metadata_props if p.key != "format_version"}
    if version is not None:
        kept["format_version"] = version
    onnx.helper.set_model_props(model, kept)
    onnx.save(model, path)
    assert contract.inspect(path).latent_dim == 8


def test_a_newer_major_format_version_is_refused_with_one_line(tmp_path: Path) -> None:
    path = onnx_models.mlp_generator(tmp_path / "m.onnx")
    newer = str(int(contract.FORMAT_VERSION) + 1)
    _set_metadata(path, format_version=f"{newer}.0")
    with pytest.raises(ModelError) as caught:
        contract.inspect(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: format_version {newer}.0 is newer") and "\n" not in message


def test_a_format_version_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    path = onnx_models.mlp_generator(tmp_path / "m.onnx")
    _set_metadata(path, format_version="two")
    with pytest.raises(ModelError, match="format_version 'two'"):
        contract.inspect(path)


def test_check_all_returns_every_spec_in_order(tmp_path: Path) -> None:
    a = onnx_models.mlp_generator(tmp_path / "a.onnx")
    b = onnx_models.mlp_generator(tmp_path / "b.onnx", conditional=True)
    assert [spec.name for spec in contract.check_all([b, a])] == ["b", "a"]


def test_two_files_with_one_model_name_are_refused(tmp_path: Path) -> None:
    a = onnx_models.mlp_generator(tmp_path / "a.onnx", name="same")
    b = onnx_models.mlp_generator(tmp_path / "b.onnx", name="same")
    with pytest.raises(ModelError, match=rf"{b}: model name 'same' is also the name of {a}"):
        contract.check_all([a, b])


def test_to_uint8_rounds_half_to_even_and_clips() -> None:
    # (x + 1) * 127.5 = 63.75, 127.5, 191.25 → 64, 128 (half to even), 191
    images = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -2.0], np.float32).reshape(1, 1, 1, 7)
    assert contract.to_uint8(images).ravel().tolist() == [0, 64, 128, 191, 255, 255, 0]
    assert contract.to_uint8(images).dtype == np.uint8


@pytest.mark.parametrize(
    ("n", "rows", "cols"),
    [(1, 1, 1), (2, 1, 2), (3, 2, 2), (5, 2, 3), (16, 4, 4), (17, 4, 5), (1024, 32, 32)],
)
def test_grid_is_near_square(n: int, rows: int, cols: int) -> None:
    assert contract.grid_shape(n) == (rows, cols)


def test_grid_places_image_i_row_major_with_padding() -> None:
    images = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1).repeat(3, 2).repeat(3, 3) + 1
    canvas = contract.grid(images, padding=2)
    assert canvas.shape == (1, 2 * 5 + 2, 3 * 5 + 2)
    assert canvas[0, 2, 2] == 1 and canvas[0, 2, 7] == 2 and canvas[0, 7, 2] == 4
    assert canvas[0, 0, :].max() == 0  # padding is black


def test_grid_with_fixed_columns() -> None:
    images = np.ones((10, 3, 2, 2), np.uint8)
    canvas = contract.grid(images, columns=8)
    assert contract.grid_shape(10, columns=8) == (2, 8)
    assert canvas.shape == (3, 2 * 4 + 2, 8 * 4 + 2)
