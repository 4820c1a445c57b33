"""Model files that cannot be served: every *.onnx entry that is not a readable regular file
is refused with one line naming it, a model directory that cannot be listed is named with
the reason, and a warm-up failure is one line naming the file, with no build paths on
/readyz."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from service.__main__ import main
from service.models import files, generator
from service.models.generator import ModelError
from tests.service.conftest import Server, poll, settings_for
from tests.support import onnx_models as models


def refusal(model_dir: Path, model_path: Path | None = None) -> str:
    with pytest.raises(ModelError) as caught:
        files.discover(model_dir, model_path)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    models.mlp_generator(tmp_path / "good.onnx")
    return tmp_path


def test_a_broken_onnx_symlink_is_refused_naming_it_and_its_target(good_dir: Path) -> None:
    entry = good_dir / "gone.onnx"
    entry.symlink_to(good_dir / "deleted.onnx")
    message = refusal(good_dir)
    assert message.startswith(f"{entry}: broken symlink to {good_dir / 'deleted.onnx'}")


def test_a_looping_onnx_symlink_is_refused_as_a_loop(good_dir: Path) -> None:
    entry = good_dir / "loop.onnx"
    entry.symlink_to(entry)
    assert refusal(good_dir) == f"{entry}: symlink loop"


def test_a_directory_named_onnx_is_refused(good_dir: Path) -> None:
    (good_dir / "folder.onnx").mkdir()
    assert refusal(good_dir) == f"{good_dir / 'folder.onnx'}: a directory, not a model file"


def test_a_fifo_named_onnx_is_refused_not_read(good_dir: Path) -> None:
    os.mkfifo(good_dir / "pipe.onnx")  # reading it would block forever
    assert refusal(good_dir) == f"{good_dir / 'pipe.onnx'}: not a regular file"


def test_a_symlink_to_a_good_file_is_served(good_dir: Path) -> None:
    (good_dir / "alias.onnx").symlink_to(good_dir / "good.onnx")
    assert files.discover(good_dir, None) == [good_dir / "alias.onnx", good_dir / "good.onnx"]


def test_a_looping_model_directory_is_named_as_a_loop(tmp_path: Path) -> None:
    looping = tmp_path / "models"
    looping.symlink_to(looping)
    assert refusal(looping) == f"{looping}: symlink loop (GAN_MODEL_DIR)"


def test_a_broken_model_directory_symlink_is_named_as_such(tmp_path: Path) -> None:
    broken = tmp_path / "models"
    broken.symlink_to(tmp_path / "nowhere")
    assert refusal(broken) == f"{broken}: broken symlink to {tmp_path / 'nowhere'} (GAN_MODEL_DIR)"


def test_a_model_directory_that_is_a_file_is_refused(good_dir: Path) -> None:
    path = good_dir / "good.onnx"
    assert refusal(path) == f"{path}: not a directory (GAN_MODEL_DIR)"


def test_a_broken_model_path_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.symlink_to(tmp_path / "missing.onnx")
    message = refusal(tmp_path, path)
    assert message == f"{path}: broken symlink to {tmp_path / 'missing.onnx'}"


def test_gan_serve_refuses_a_broken_symlink_with_one_line_and_exit_2(
    good_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (good_dir / "gone.onnx").symlink_to(good_dir / "deleted.onnx")
    monkeypatch.setenv("GAN_MODEL_DIR", str(good_dir))
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gone.onnx: broken symlink" in err


def reshape_failing_generator(path: Path) -> Path:
    """Passes every contract check, loads, and fails its first run inside onnxruntime: its
    weights give 783 pixels where the reshape wants 784."""
    models.mlp_generator(path)
    model = onnx.load(path)
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == "W":
            wrong = numpy_helper.from_array(np.zeros((8, 783), np.float32), "W")
            model.graph.initializer[index].CopyFrom(wrong)
    onnx.save(model, path)
    return path


def test_runtime_error_line_drops_build_paths_and_signatures(tmp_path: Path) -> None:
    path = reshape_failing_generator(tmp_path / "bad.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception) as caught:  # onnxruntime's own exception type
        session.run(None, {"z": np.zeros((2, 8), np.float32)})
    raw = str(caught.value)
    assert "/onnxruntime" in raw and "onnxruntime::" in raw  # what there is to remove
    line = generator.runtime_error_line(caught.value)
    assert "\n" not in line and "/onnxruntime" not in line and "::" not in line
    assert "cannot be reshaped" in line and "{2,783}" in line


def test_a_warm_up_failure_is_one_line_naming_the_file_without_build_paths(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    path = reshape_failing_generator(tmp_path / "bad.onnx")
    server = serve(settings_for(tmp_path), ready=False)
    poll(lambda: server.client.get("/readyz").json()["status"] == "failed", timeout=60)
    reason = server.client.get("/readyz").json()["reason"]
    assert reason.startswith(f"{path}: warm-up at batch 1 failed: ")
    assert "cannot be reshaped" in reason
    assert "\n" not in reason and "/onnxruntime" not in reason and "::" not in reason
