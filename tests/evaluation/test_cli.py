"""`gan-evaluate` end to end on tiny ONNX generators and the fake data set, and its errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from evaluation.cli import main
from evaluation.feature_net import DEFAULT_PATH
from tests.evaluation.generators import tiny_generator

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

N = 200  # samples per row: enough for every metric, fast on fake data


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional", "unconditional"])
def test_gan_evaluate_end_to_end_on_fake_data(
    tmp_path: Path, conditional: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_generator(tmp_path / "tiny.onnx", conditional)
    out, grid = tmp_path / "report.json", tmp_path / "grid.png"
    argv = [
        str(model),
        "--dataset",
        "fake",
        "--n",
        str(N),
        "--threads",
        "1",
        "--out",
        str(out),
        "--grid",
        str(grid),
    ]
    assert main(argv) == 0

    report = json.loads(out.read_text())
    assert report["evaluator"]["sha256"] == sha256(DEFAULT_PATH)
    assert report["model"]["sha256"] == sha256(model)
    assert set(report["rows"]) == {"model", "real", "untrained"}
    for row in report["rows"].values():
        assert row["n"] == N
        for key in (
            "fcd",
            "kid",
            "inception_score",
            "precision",
            "recall",
            "density",
            "coverage",
            "class_histogram",
            "c2st",
            "parzen",
            "memorisation",
        ):
            assert key in row
        assert np.isfinite(row["parzen"]["mean"]) and row["parzen"]["stderr"] > 0
    rows = report["rows"]
    # the floor is lowest, the template generator next, random weights far behind
    assert rows["real"]["fcd"] < rows["model"]["fcd"] < rows["untrained"]["fcd"]
    assert rows["model"]["parzen"]["mean"] > rows["untrained"]["parzen"]["mean"]
    assert report["untrained"]["reinitialised"]["weight"] == 1
    per_class = rows["model"]["fcd_per_class"]
    assert (per_class is not None) == conditional
    if conditional:
        assert len(per_class) == 10 and len(rows["model"]["label_accuracy_per_class"]) == 10

    table = capsys.readouterr().out
    assert "FCD" in table and "real vs real" in table and "untrained" in table
    assert ("FCD untrained" in table) == conditional  # the per-class table
    with Image.open(grid) as image:
        assert image.mode == "L" and image.size[0] > 10 * 56 and image.size[1] > 10 * 56


def test_gan_evaluate_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    model = tiny_generator(tmp_path / "tiny.onnx", conditional=True)
    reports = []
    for name in ("a.json", "b.json"):
        argv = [
            str(model),
            "--dataset",
            "fake",
            "--n",
            "60",
            "--threads",
            "1",
            "--no-untrained",
            "--out",
            str(tmp_path / name),
        ]
        assert main(argv) == 0
        reports.append(json.loads((tmp_path / name).read_text())["rows"])
    assert reports[0] == reports[1]


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gan-evaluate: error: "), err
    return err


def test_missing_model_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no such file" in _error([str(tmp_path / "nope.onnx")], capsys)


def test_a_file_that_is_not_onnx_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot a model at all" * 10)
    assert "not an ONNX model" in _error([str(bad), "--dataset", "fake"], capsys)


def test_an_onnx_file_that_is_not_a_generator_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    assert "relu.onnx: not a generator" in _error([str(path), "--dataset", "fake"], capsys)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n", "10"], "--n must be at least"),
        (["--out", "/nonexistent-dir/report.json"], "does not exist"),
        (["--grid", "grid.jpg"], "must end in .png"),
        (["--dataset", "cifar"], "invalid choice"),
        (["--evaluator", "/nonexistent/evaluator.onnx"], "retrain it with"),
        (["--dataset", "mnist"], "needs --data-dir"),
    ],
)
def test_bad_options_are_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("GAN_DATA_DIR", raising=False)
    model = tiny_generator(tmp_path / "tiny.onnx", conditional=False)
    argv = [str(model), "--dataset", "fake", *extra]
    assert message in _error(argv, capsys)


def test_the_evaluator_asset_has_its_contract_and_accuracy() -> None:
    model = onnx.load(str(DEFAULT_PATH))
    assert [o.name for o in model.graph.output] == ["logits", "features"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert float(meta["test_accuracy"]) >= 0.91
    # the shipped file was written before the trainer moved to evaluation.train_feature_net
    assert meta["dataset"] == "fashion-mnist" and "--seed 0" in meta["command"]
