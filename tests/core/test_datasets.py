"""The idx reader on valid, gzipped and corrupt files; the fake data set."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from core.datasets import (
    DataError,
    load_dataset,
    make_fake_dataset,
    read_idx_images,
    read_idx_labels,
    to_unit_range,
    write_idx,
)


def _write_split(directory: Path, count: int = 5, prefix: str = "train") -> np.ndarray:
    images = np.arange(count * 28 * 28, dtype=np.uint64).reshape(count, 28, 28) % 256
    write_idx(images.astype(np.uint8), np.arange(count) % 10, directory, prefix)
    return images.astype(np.uint8)


def test_reads_plain_idx_files(tmp_path: Path) -> None:
    images = _write_split(tmp_path)
    data = load_dataset("mnist", tmp_path, "train")
    assert data.images.shape == (5, 28, 28)
    np.testing.assert_array_equal(data.images, images)
    assert data.labels.tolist() == [0, 1, 2, 3, 4]
    assert data.class_names[3] == "3"


def test_reads_gzipped_idx_files(tmp_path: Path) -> None:
    images = _write_split(tmp_path, prefix="t10k")
    for path in tmp_path.iterdir():
        (path.parent / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    data = load_dataset("fashion-mnist", tmp_path, "test")
    np.testing.assert_array_equal(data.images, images)
    assert data.class_names[0] == "T-shirt/top"
    assert data.class_names[9] == "Ankle boot"


def test_missing_files_name_the_directory_and_the_package(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "\n" not in message


def test_data_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_split(tmp_path)
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path))
    assert len(load_dataset("fashion-mnist")) == 5


def test_bad_magic_number_is_reported(tmp_path: Path) -> None:
    _write_split(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[:4] = struct.pack(">I", 0x0000_0801)
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="bad magic number"):
        read_idx_images(path)


def test_truncated_images_are_reported(tmp_path: Path) -> None:
    _write_split(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="wrong length"):
        load_dataset("mnist", tmp_path)


def test_truncated_header_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="truncated"):
        read_idx_labels(path)


def test_corrupt_gzip_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        read_idx_labels(path)


def test_image_and_label_counts_must_match(tmp_path: Path) -> None:
    _write_split(tmp_path, count=5)
    write_idx(np.zeros((4, 28, 28), np.uint8), np.zeros(4), tmp_path / "other", "train")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        (tmp_path / "other" / "train-labels-idx1-ubyte").read_bytes()
    )
    with pytest.raises(DataError, match=r"5 images but .* 4 labels"):
        load_dataset("mnist", tmp_path)


def test_fake_data_is_deterministic_and_labelled() -> None:
    first, second = make_fake_dataset(64, seed=0), make_fake_dataset(64, seed=0)
    np.testing.assert_array_equal(first.images, second.images)
    assert first.fingerprint() == second.fingerprint()
    assert first.fingerprint() != make_fake_dataset(64, seed=1).fingerprint()
    assert set(first.labels.tolist()) <= set(range(10))
    # class c's bar sits at rows 2+2c .. 4+2c
    image, label = first.images[0], int(first.labels[0])
    assert image[2 + 2 * label, 10] > 150


def test_unit_range_scales_to_tanh_range() -> None:
    scaled = to_unit_range(np.array([[[0, 255]]], dtype=np.uint8))
    assert scaled.shape == (1, 1, 1, 2)
    assert scaled.min() == -1.0 and scaled.max() == 1.0


def test_real_fashion_mnist_reads_when_installed() -> None:
    data = load_dataset("fashion-mnist", split="test")
    assert data.images.shape == (10000, 28, 28)
    assert np.bincount(data.labels).tolist() == [1000] * 10
