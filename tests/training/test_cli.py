"""Every CLI user error is one line on stderr and exit code 2; the happy paths print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.helpers import tiny_cli_args
from training.cli import export_main, train_main


def _one_line_error(capsys: pytest.CaptureFixture[str], run: object, fragment: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run()  # type: ignore[operator]
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment in err, err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--epochs", "0"], "below the minimum"),
        (["--batch-size", "many"], "is not a int"),
        (["--arch", "resnet"], "invalid choice"),
        (["--ema-decay", "1.5"], "outside [0, 1)"),
        (["--resume", "--overwrite"], "contradict"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_train_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                         argv: list[str], fragment: str) -> None:
    _one_line_error(capsys, lambda: train_main(["--out", str(tmp_path / "r"), *argv]), fragment)


def test_missing_data_names_the_directory(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path / "r"), "--data-dir", str(tmp_path / "none"), "--max-steps", "1"]
    _one_line_error(capsys, lambda: train_main(argv), "apt-get install dataset-fashion-mnist")


def test_corrupt_data_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    argv = ["--out", str(tmp_path / "r"), "--dataset", "mnist", "--data-dir", str(tmp_path)]
    _one_line_error(capsys, lambda: train_main(argv), "wrong length")


def test_mnist_needs_a_data_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAN_DATA_DIR", raising=False)
    argv = ["--out", str(tmp_path / "r"), "--dataset", "mnist"]
    _one_line_error(capsys, lambda: train_main(argv), "--data-dir")


def test_non_empty_run_dir_and_missing_resume(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, lambda: train_main(["--out", str(tmp_path)]), "--overwrite")
    empty = tmp_path / "empty"
    _one_line_error(capsys, lambda: train_main(["--out", str(empty), "--resume"]), "no checkpoint")


def test_dry_run_prints_the_resolved_config(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    assert train_main(["--out", str(tmp_path / "r"), "--arch", "mlp", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["arch"] == "mlp" and config["batch_size"] == 100 and config["g_width"] == 256
    assert not (tmp_path / "r").exists()


def test_train_then_export_then_inspect(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--max-steps", "2")) == 0
    assert "done: 2 steps" in capsys.readouterr().err
    out = tmp_path / "g.onnx"
    assert export_main([str(run), "--out", str(out), "--name", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "onnx.checker: ok" in printed and "parity max abs diff" in printed
    assert export_main([str(out), "--inspect"]) == 0
    assert "name" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["{tmp}/nothing", "--out", "{tmp}/g.onnx"], "no checkpoint"),
        (["{tmp}", "--opset", "99", "--out", "{tmp}/g.onnx"], "--opset 99"),
        (["{tmp}"], "--out NAME.onnx is required"),
        (["{tmp}/junk.pt", "--out", "{tmp}/g.onnx"], "cannot read checkpoint"),
        (["{tmp}/junk.pt", "--inspect"], "not a readable ONNX file"),
    ],
)
def test_bad_export_invocations(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                argv: list[str], fragment: str) -> None:
    (tmp_path / "junk.pt").write_bytes(b"junk")
    resolved = [a.format(tmp=tmp_path) for a in argv]
    _one_line_error(capsys, lambda: export_main(resolved), fragment)
