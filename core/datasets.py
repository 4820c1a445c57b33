"""Training data: MNIST-format idx files (Fashion-MNIST, MNIST), folders of your own
PNG/JPEG images (core/folder.py) and a synthetic set for tests.

Every data set is held in memory as uint8 images ``(N, H, W)`` (idx, one channel) or
``(N, C, H, W)`` (folders) and int64 labels ``(N,)``; `to_unit_range` scales images to
[-1, 1], the generator's tanh range.

    python -m core.datasets --dataset fashion-mnist   # prints what was found
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_DIR_ENV = "GAN_DATA_DIR"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
DATASETS = ("fashion-mnist", "mnist", "fake")  # those with a test split (evaluation)
TRAIN_DATASETS = (*DATASETS, "folder")
SPLITS = ("train", "test")

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


class DataError(ValueError):
    """A user-facing data problem: missing, corrupt or inconsistent files. One line."""


@dataclass(frozen=True)
class ImageDataset:
    name: str
    split: str
    images: np.ndarray  # (N, H, W) or (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64
    class_names: tuple[str, ...]  # () when the data has no labels (a flat image folder)
    files_digest: str = ""  # image folders: a digest of the files themselves
    skipped_files: int = 0  # image folders: unreadable files skipped (--skip-bad-files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.images.ndim == 3:
            return (1, int(self.images.shape[1]), int(self.images.shape[2]))
        channels, height, width = self.images.shape[1:]
        return (int(channels), int(height), int(width))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def fingerprint(self) -> str:
        """sha256 prefix of images and labels: tells two data sets apart in checkpoints."""
        digest = hashlib.sha256()
        digest.update(f"{self.name}:{self.split}:{self.images.shape}".encode())
        digest.update(self.files_digest.encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.ascontiguousarray(self.labels).astype("<i8").tobytes())
        return digest.hexdigest()[:16]


def class_names_for(dataset: str) -> tuple[str, ...]:
    """The label names of a data set (the fake set uses the digits)."""
    return FASHION_MNIST_CLASSES if dataset == "fashion-mnist" else MNIST_CLASSES


def default_data_dir(dataset: str) -> Path | None:
    """`GAN_DATA_DIR`, else Debian's package location for Fashion-MNIST."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    if dataset == "fashion-mnist":
        return DEBIAN_FASHION_MNIST_DIR
    return None


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    split: str = "train",
    fake_size: int = 2048,
    image_size: int | None = None,
    channels: int | None = None,
    skip_bad_files: bool = False,
) -> ImageDataset:
    """Load `split` of data set `name`; raises `DataError` with one readable line.
    `image_size`, `channels` and `skip_bad_files` apply to image folders only."""
    if name not in TRAIN_DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(TRAIN_DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if name == "fake":
        return make_fake_dataset(fake_size, seed=0 if split == "train" else 1, split=split)
    given = data_dir is not None or bool(os.environ.get(DATA_DIR_ENV))
    directory = Path(data_dir) if data_dir is not None else default_data_dir(name)
    if directory is None:
        what = "a folder of PNG/JPEG images" if name == "folder" else "its idx files"
        raise DataError(f"--dataset {name} needs --data-dir (or {DATA_DIR_ENV}) pointing at {what}")
    if name == "folder":
        return _load_folder(directory, split, image_size, channels, skip_bad_files)
    prefix = _SPLIT_PREFIX[split]
    images_path = _find_idx(directory, f"{prefix}-images-idx3-ubyte", name, given)
    labels_path = _find_idx(directory, f"{prefix}-labels-idx1-ubyte", name, given)
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path.name} has {len(images)} images but {labels_path.name} "
            f"has {len(labels)} labels"
        )
    classes = class_names_for(name)
    if len(labels) and int(labels.max()) >= len(classes):
        raise DataError(f"{labels_path}: label {int(labels.max())} is out of range 0..9")
    return ImageDataset(name, split, images, labels, classes)


def _load_folder(
    directory: Path, split: str, image_size: int | None, channels: int | None, skip_bad_files: bool
) -> ImageDataset:
    from core.folder import FolderError, load_folder

    if split != "train":
        raise DataError("--dataset folder has no test split")
    try:
        folder = load_folder(directory, image_size, channels, skip_bad_files)
    except FolderError as error:
        raise DataError(str(error)) from None
    return ImageDataset(
        "folder",
        split,
        folder.images,
        folder.labels,
        folder.class_names,
        folder.files_digest,
        folder.skipped,
    )


def _find_idx(directory: Path, stem: str, dataset: str, given: bool) -> Path:
    """The idx file (or its .gz) in `directory`; `given`: the user named the directory."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    if given:
        hint = f"is --data-dir (or {DATA_DIR_ENV}) the directory holding the {dataset} files?"
        if dataset == "fashion-mnist":
            hint += (
                f" `apt-get install dataset-fashion-mnist` puts them in {DEBIAN_FASHION_MNIST_DIR}"
            )
    elif dataset == "fashion-mnist":
        hint = "install it with `apt-get install dataset-fashion-mnist` or pass --data-dir"
    else:
        hint = "pass --data-dir with the MNIST idx files"
    raise DataError(f"{stem}[.gz] not found in {directory}: {hint}")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot read ({error})") from None


def read_idx_images(path: Path) -> np.ndarray:
    """Read an idx3 image file into a ``(N, H, W)`` uint8 array, checking header and size."""
    raw = _read_bytes(path)
    if len(raw) < 16:
        raise DataError(f"{path}: truncated idx header ({len(raw)} bytes)")
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != _IMAGES_MAGIC:
        raise DataError(f"{path}: bad magic number {magic:#010x}, expected {_IMAGES_MAGIC:#010x}")
    expected = 16 + count * rows * cols
    if len(raw) != expected:
        raise DataError(f"{path}: wrong length {len(raw)} bytes, header implies {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """Read an idx1 label file into a ``(N,)`` int64 array, checking header and size."""
    raw = _read_bytes(path)
    if len(raw) < 8:
        raise DataError(f"{path}: truncated idx header ({len(raw)} bytes)")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != _LABELS_MAGIC:
        raise DataError(f"{path}: bad magic number {magic:#010x}, expected {_LABELS_MAGIC:#010x}")
    if len(raw) != 8 + count:
        raise DataError(f"{path}: wrong length {len(raw)} bytes, header implies {8 + count}")
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


def write_idx(images: np.ndarray, labels: np.ndarray, directory: Path, prefix: str) -> None:
    """Write images and labels as idx files (used by tests and to export the fake set)."""
    directory.mkdir(parents=True, exist_ok=True)
    count, rows, cols = images.shape
    header = struct.pack(">IIII", _IMAGES_MAGIC, count, rows, cols)
    (directory / f"{prefix}-images-idx3-ubyte").write_bytes(
        header + images.astype(np.uint8).tobytes()
    )
    (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", _LABELS_MAGIC, count) + labels.astype(np.uint8).tobytes()
    )


def make_fake_dataset(size: int = 2048, seed: int = 0, split: str = "train") -> ImageDataset:
    """Deterministic synthetic 28×28 images, one easy shape per label, with pixel noise.

    Class c is a bright horizontal bar at row 2 + 2c on a dark background, so a
    discriminator can separate real from random quickly and a conditional model has
    something label-specific to learn.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=size, dtype=np.int64)
    images = rng.integers(0, 40, size=(size, 28, 28)).astype(np.float64)
    rows = 2 + 2 * labels  # (N,)
    for offset in range(3):
        images[np.arange(size), rows + offset, 4:24] = 220
    images += rng.normal(0, 8, size=images.shape)
    images = np.clip(images, 0, 255).astype(np.uint8)
    return ImageDataset("fake", split, images, labels, class_names_for("fake"))


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W)`` or ``(N, C, H, W)`` → float32 ``(N, C, H, W)`` in [-1, 1]."""
    pixels = images.astype(np.float32)
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    return pixels / 127.5 - 1.0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Check that a data set can be read.")
    parser.add_argument("--dataset", default="fashion-mnist", choices=DATASETS)
    parser.add_argument("--data-dir", default=None, help="directory holding the idx files")
    args = parser.parse_args(argv)
    try:
        for split in SPLITS:
            data = load_dataset(args.dataset, args.data_dir, split)
            print(
                f"{data.name} {split}: {len(data)} images {data.image_shape}, "
                f"fingerprint {data.fingerprint()}"
            )
    except DataError as error:
        parser.exit(2, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
