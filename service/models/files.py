"""Which model files to serve: `GAN_MODEL_PATH` alone, or every *.onnx in `GAN_MODEL_DIR`.

An entry that is not a readable regular file is refused with one line naming it, never
skipped in silence (docs/reliability.md, "bad model files survived").
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from core.contract import ModelError


def discover(model_dir: Path, model_path: Path | None) -> list[Path]:
    """The files to serve: `model_path` alone if set, else every *.onnx in `model_dir`.

    An entry that is not a readable regular file (a broken or looping symlink, a directory,
    a FIFO) is refused with one line naming it, like any other bad model file; a model
    directory that cannot be listed is named with the reason. A missing one holds no models.
    """
    if model_path is not None:
        if problem := _not_a_file(model_path):
            problem = "no such model file" if problem == "missing" else problem
            raise ModelError(f"{model_path}: {problem}")
        return [model_path]
    try:
        if not stat.S_ISDIR(model_dir.stat().st_mode):
            raise ModelError(f"{model_dir}: not a directory (GAN_MODEL_DIR)")
        entries = sorted(model_dir.glob("*.onnx"))
    except OSError as exc:
        if exc.errno == errno.ENOENT and not model_dir.is_symlink():
            return []
        raise ModelError(f"{model_dir}: {_path_problem(model_dir, exc)} (GAN_MODEL_DIR)") from exc
    for entry in entries:
        if problem := _not_a_file(entry):
            raise ModelError(f"{entry}: {problem}")
    return entries


def _path_problem(path: Path, exc: OSError) -> str:
    """What is wrong with `path`, from the error that reaching it raised, in a few words."""
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"broken symlink to {os.readlink(path)}"
    return f"cannot read: {exc.strerror or exc}"


def _not_a_file(path: Path) -> str | None:
    """None for a regular file (through symlinks); else what it is, or "missing"."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT and not path.is_symlink():
            return "missing"
        return _path_problem(path, exc)
    if stat.S_ISDIR(mode):
        return "a directory, not a model file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None
