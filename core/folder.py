"""Your own images as a training set: a folder of PNG/JPEG files.

    DIR/sneaker/*.png, DIR/boot/*.jpg   one subfolder per class → a conditional data set
                                        (class names = subfolder names, sorted)
    DIR/*.png                           a flat folder → unconditional (no labels)

Every image is centre-cropped to a square and resized to `image_size` (28, 32 or 64;
default: the largest of those not above the smallest side found), in grayscale or RGB
(`channels`; default: RGB if any file has colour, else grayscale). A file that cannot be
decoded stops loading with one line naming it, unless `skip_bad_files` (then counted).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SIZES = (28, 32, 64)  # square sizes the models are built for
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


class FolderError(ValueError):
    """A folder that cannot be used as a data set. One line."""


@dataclass(frozen=True)
class FolderImages:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64; all 0 for a flat folder
    class_names: tuple[str, ...]  # () for a flat folder
    files_digest: str  # sha256 over every used file's relative path and bytes
    skipped: int  # undecodable files skipped (skip_bad_files)


def list_images(directory: Path) -> tuple[list[tuple[Path, int]], tuple[str, ...]]:
    """(file, label) pairs in a stable order, and the class names (() when flat)."""
    if not directory.is_dir():
        raise FolderError(f"--data-dir {directory} is not a directory")
    classes = tuple(
        sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    if classes:
        pairs = [
            (path, label)
            for label, name in enumerate(classes)
            for path in _image_files(directory / name)
        ]
        empty = [name for name in classes if not _image_files(directory / name)]
        if empty:
            raise FolderError(f"class folder {directory / empty[0]} has no PNG/JPEG files")
    else:
        pairs = [(path, 0) for path in _image_files(directory)]
    if not pairs:
        raise FolderError(f"no PNG/JPEG files in {directory} (nor in subfolders of it)")
    return pairs, classes


def _image_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _open(path: Path) -> Image.Image:
    """The decoded image; a file PIL cannot fully decode raises FolderError naming it."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            return image.copy()
    except (OSError, UnidentifiedImageError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FolderError(
            f"{path}: not a readable image ({reason}); fix or remove it, or pass --skip-bad-files"
        ) from None


def _square(image: Image.Image, size: int, mode: str) -> np.ndarray:
    """Centre crop to a square, resize, convert: (C, size, size) uint8."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    if "A" in image.getbands() or "transparency" in image.info:  # transparent → black
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    square = image.crop((left, top, left + side, top + side)).convert(mode)
    if side != size:
        square = square.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(square, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def load_folder(
    directory: Path,
    image_size: int | None = None,
    channels: int | None = None,
    skip_bad_files: bool = False,
) -> FolderImages:
    """Read, check and resize every image of `directory` (see the module docstring)."""
    pairs, classes = list_images(directory)
    opened: list[tuple[Image.Image, int, Path]] = []
    skipped = 0
    for path, label in pairs:
        try:
            opened.append((_open(path), label, path))
        except FolderError:
            if not skip_bad_files:
                raise
            skipped += 1
    if not opened:
        raise FolderError(f"none of the {len(pairs)} image files in {directory} is readable")
    if channels is None:
        channels = 1 if all(image.mode in _GRAY_MODES for image, _, _ in opened) else 3
    if image_size is None:
        smallest = min(min(image.size) for image, _, _ in opened)
        image_size = max([s for s in IMAGE_SIZES if s <= smallest], default=IMAGE_SIZES[0])
    mode = "L" if channels == 1 else "RGB"
    digest = hashlib.sha256()
    for _, _, path in opened:
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    images = np.stack([_square(image, image_size, mode) for image, _, _ in opened])
    labels = np.array([label for _, label, _ in opened], dtype=np.int64)
    return FolderImages(images, labels, classes, digest.hexdigest()[:16], skipped)
