"""Every CLI user error is one line on stderr and exit code 2; the happy paths print."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from tests.support import onnx_models
from tests.training.helpers import tiny_cli_args
from training.cli import export_main, train_main
from training.monitoring import done_line

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


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
        (["--diffaugment", "translation,flip"], "unknown policy flip"),
        (["--arch", "mlp", "--g-cond", "cbn"], "dcgan options"),
        (["--image-size", "48"], "invalid choice"),
    ],
)
def test_bad_train_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], fragment: str
) -> None:
    _one_line_error(capsys, lambda: train_main(["--out", str(tmp_path / "r"), *argv]), fragment)


def test_a_missing_data_dir_that_was_given_is_named_not_asked_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--out", str(tmp_path / "r"), "--data-dir", str(tmp_path / "none"), "--max-steps", "1"]
    with pytest.raises(SystemExit):
        train_main(argv)
    err = capsys.readouterr().err
    assert f"not found in {tmp_path / 'none'}: is --data-dir" in err
    assert "pass --data-dir" not in err


def test_missing_default_fashion_mnist_suggests_the_debian_package(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.datasets

    monkeypatch.delenv("GAN_DATA_DIR", raising=False)
    monkeypatch.setattr(core.datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "none")
    argv = ["--out", str(tmp_path / "r"), "--max-steps", "1"]
    _one_line_error(capsys, lambda: train_main(argv), "apt-get install dataset-fashion-mnist")


def test_corrupt_data_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    argv = ["--out", str(tmp_path / "r"), "--dataset", "mnist", "--data-dir", str(tmp_path)]
    _one_line_error(capsys, lambda: train_main(argv), "wrong length")


def test_mnist_needs_a_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GAN_DATA_DIR", raising=False)
    argv = ["--out", str(tmp_path / "r"), "--dataset", "mnist"]
    _one_line_error(capsys, lambda: train_main(argv), "--data-dir")


def test_a_directory_of_other_files_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, lambda: train_main(["--out", str(tmp_path)]), "--overwrite")


def test_dry_run_prints_the_resolved_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert train_main(["--out", str(tmp_path / "r"), "--arch", "mlp", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["arch"] == "mlp" and config["batch_size"] == 100 and config["g_width"] == 256
    assert not (tmp_path / "r").exists()


def test_train_then_export_then_inspect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--max-steps", "2")) == 0
    assert "done: 2 steps (0 full epochs + 2 steps)" in capsys.readouterr().err
    out = tmp_path / "g.onnx"
    assert export_main([str(run), "--out", str(out), "--name", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "onnx.checker: ok" in printed and "parity max abs diff" in printed
    assert export_main([str(out), "--inspect"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{out} (opset 18, {out.stat().st_size} bytes)")
    # the signature: z float [batch, 8] in, image float [batch, 1, 28, 28] out
    signature = lines[1 : lines.index("metadata:")]
    assert signature[0] == "inputs:" and signature[2] == "outputs:" and len(signature) == 5
    assert signature[1].startswith("  z: float [") and signature[1].endswith(", 8]")
    assert signature[3].startswith("  image: float [") and signature[3].endswith(", 1, 28, 28]")
    assert signature[4] == "contract: an unconditional generator (no label input, no classes)"
    # every metadata entry, "key  value", exactly as stored in the file
    printed = dict(line.strip().split(maxsplit=1) for line in lines[lines.index("metadata:") + 1 :])
    stored = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert printed == stored and printed["name"] == "tiny"
    assert "num_classes" not in stored and "class_names" not in stored


def _inspected(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[str, dict[str, str]]:
    """gan-export --inspect's contract line and its metadata listing."""
    assert export_main([str(path), "--inspect"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (verdict,) = (line for line in lines if line.startswith("contract: "))
    listed = lines[lines.index("metadata:") + 1 :]
    return verdict, dict(line.strip().split(maxsplit=1) for line in listed)


def test_inspect_shows_a_conditional_model_and_its_classes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = onnx_models.mlp_generator(tmp_path / "c.onnx", conditional=True)
    verdict, listed = _inspected(capsys, path)
    assert verdict == "contract: a conditional generator of 10 classes"
    assert listed["num_classes"] == "10"
    assert json.loads(listed["class_names"]) == onnx_models.CLASS_NAMES


def test_inspect_shows_an_unconditional_model_without_classes_also_where_the_file_has_some(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Exports used to write the data set's classes into unconditional models too (the shipped
    # fashion-mlp-gan.onnx has them); the contract ignores them, and so does the listing.
    path = onnx_models.mlp_generator(tmp_path / "u.onnx", conditional=False)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(
        model,
        {p.key: p.value for p in model.metadata_props}
        | {"num_classes": "10", "class_names": json.dumps([str(i) for i in range(10)])},
    )
    onnx.save(model, str(path))
    verdict, listed = _inspected(capsys, path)
    assert verdict == (
        "contract: an unconditional generator (no label input, no classes; "
        "its class_names and num_classes metadata are ignored)"
    )
    assert listed["conditional"] == "false"
    assert "num_classes" not in listed and "class_names" not in listed


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
def test_bad_export_invocations(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], fragment: str
) -> None:
    (tmp_path / "junk.pt").write_bytes(b"junk")
    resolved = [a.format(tmp=tmp_path) for a in argv]
    _one_line_error(capsys, lambda: export_main(resolved), fragment)


def test_done_counts_full_epochs_and_steps_and_the_bar_ends_at_max_steps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # 2048 fake images at batch 64: 32 steps per epoch
    assert train_main(tiny_cli_args(tmp_path / "run", "--epochs", "5", "--max-steps", "40")) == 0
    err = capsys.readouterr().err
    assert "done: 40 steps (1 full epoch + 8 steps)" in err
    assert "40/40 [" in err and "/160 [" not in err and "/32 [" not in err
    # the epochs that --max-steps lets the run make, not --epochs
    assert "epoch 1/2:" in err and "epoch 2/2:" in err and "/5:" not in err


@pytest.mark.parametrize(
    ("steps", "full_epochs", "steps_in_epoch", "text"),
    [
        (1, 0, 1, "done: 1 step (0 full epochs + 1 step) in runs/x"),
        (33, 1, 1, "done: 33 steps (1 full epoch + 1 step) in runs/x"),
        (64, 2, 0, "done: 64 steps (2 full epochs + 0 steps) in runs/x"),
    ],
)
def test_the_done_line_says_one_in_the_singular(
    steps: int, full_epochs: int, steps_in_epoch: int, text: str
) -> None:
    assert done_line(steps, full_epochs, steps_in_epoch, Path("runs/x")) == text


def test_gan_export_prints_no_torchvision_notices(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = tmp_path / "run"
    assert train_main(tiny_cli_args(run, "--max-steps", "1")) == 0
    exporter = Path(sys.executable).with_name("gan-export")
    result = subprocess.run(
        [str(exporter), str(run), "--out", str(tmp_path / "g.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "torchvision" not in result.stderr and "wrote" in result.stdout


def test_readme_training_sections_name_every_gan_train_flag_and_only_real_ones() -> None:
    import re

    from training.cli import train_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    training = readme[readme.index("## Training") : readme.index("## Export")]
    named = set(re.findall(r"(--[a-z][a-z0-9_-]*[a-z0-9])", training))
    flags = {o for a in train_parser()._actions for o in a.option_strings if o.startswith("--")}
    flags -= {"--help"}
    assert named - flags <= {
        "--nproc_per_node",
        "--standalone",
        "--nnodes",
        "--node_rank",
        "--rdzv_backend",
        "--rdzv_endpoint",
        "--rdzv_id",
        "--no-ema",
        "--help",
        "--index-url",  # pip's, installing PyTorch's CPU build
    }
    assert flags <= named, flags - named
