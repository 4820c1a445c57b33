"""Training on your own images (--dataset folder): layout, channels, sizes, bad files,
fingerprint, and the three README commands end to end (train → export → gan-serve)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from core.datasets import DataError, load_dataset
from tests.support.ports import free_port
from training.cli import export_main, train_main


def _write_images(
    directory: Path,
    count: int,
    size: int = 32,
    mode: str = "RGB",
    seed: int = 0,
    suffix: str = ".png",
) -> None:
    """`count` random images of one colour family per folder (so classes differ)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
        pixels[..., 0] = (pixels[..., 0] // 4) + 64 * (seed % 4)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
            directory / f"{index:03d}{suffix}"
        )


def test_class_subfolders_become_sorted_class_names_and_labels(tmp_path: Path) -> None:
    _write_images(tmp_path / "zebra", 3, seed=1)
    _write_images(tmp_path / "apple", 2, seed=2, suffix=".jpg")
    (tmp_path / "README.txt").write_text("not an image: ignored")
    data = load_dataset("folder", tmp_path)
    assert data.class_names == ("apple", "zebra")
    assert data.labels.tolist() == [0, 0, 1, 1, 1]
    assert data.image_shape == (3, 32, 32)


def test_a_flat_folder_is_unlabelled_and_grayscale_files_give_one_channel(tmp_path: Path) -> None:
    _write_images(tmp_path, 4, size=40, mode="L")
    data = load_dataset("folder", tmp_path)
    assert data.class_names == () and data.image_shape == (1, 32, 32)  # 40 px → 32
    assert load_dataset("folder", tmp_path, channels=3, image_size=64).image_shape == (3, 64, 64)


def test_an_undecodable_file_is_one_line_naming_it_or_skipped_and_counted(tmp_path: Path) -> None:
    _write_images(tmp_path / "a", 3)
    bad = tmp_path / "a" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(DataError) as error:
        load_dataset("folder", tmp_path)
    message = str(error.value)
    assert str(bad) in message and "--skip-bad-files" in message and "\n" not in message
    data = load_dataset("folder", tmp_path, skip_bad_files=True)
    assert len(data) == 3 and data.skipped_files == 1


def test_the_fingerprint_covers_the_files(tmp_path: Path) -> None:
    _write_images(tmp_path / "a", 3)
    before = load_dataset("folder", tmp_path).fingerprint()
    (tmp_path / "a" / "001.png").rename(tmp_path / "a" / "renamed.png")
    renamed = load_dataset("folder", tmp_path).fingerprint()
    _write_images(tmp_path / "a", 1, seed=9)  # rewrites 000.png with other pixels
    changed = load_dataset("folder", tmp_path).fingerprint()
    assert len({before, renamed, changed}) == 3


def test_conditional_training_on_a_flat_folder_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _write_images(tmp_path / "images", 4)
    argv = [
        "--out",
        str(tmp_path / "run"),
        "--dataset",
        "folder",
        "--data-dir",
        str(tmp_path / "images"),
        "--conditional",
        "--max-steps",
        "1",
    ]
    with pytest.raises(SystemExit):
        train_main(argv)
    assert "subfolder" in capsys.readouterr().err


def test_train_export_and_serve_a_folder_of_rgb_images(tmp_path: Path) -> None:
    images = tmp_path / "images"
    _write_images(images / "cats", 32, seed=1)
    _write_images(images / "dogs", 32, seed=2)
    run, model_dir = tmp_path / "run", tmp_path / "models"
    assert (
        train_main(
            [
                "--dataset",
                "folder",
                "--data-dir",
                str(images),
                "--conditional",
                "--g-width",
                "8",
                "--d-width",
                "8",
                "--batch-size",
                "16",
                "--max-steps",
                "3",
                "--threads",
                "1",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert export_main([str(run), "--out", str(model_dir / "pets.onnx")]) == 0

    port = free_port()
    env = {**os.environ, "GAN_MODEL_DIR": str(model_dir), "GAN_PROVIDERS": "cpu"}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gan-serve")),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:  # until the service says it is ready
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                try:
                    if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            response = httpx.post(
                url + "/samples", params={"n": 4, "label": "dogs", "format": "png"}, timeout=30
            )
        finally:
            server.terminate()
            server.wait(timeout=60)
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as png:
        # a 2 × 2 grid of 32 × 32 images with 2 px between and around them
        assert png.format == "PNG" and png.size == (70, 70) and png.mode == "RGB"
