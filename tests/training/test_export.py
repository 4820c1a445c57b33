"""The ONNX export contract: names, types, dynamic batch, parity, metadata, one file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from core import contract
from evaluation.sampler import GeneratorSampler
from service.models import generator
from tests.training.helpers import tiny_config
from training.cli import export_main
from training.export import ExportError, export, load_generator, signature_text
from training.train import train

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


@pytest.fixture(scope="module", params=[False, True], ids=["unconditional", "conditional"])
def trained_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("export") / "run"
    train(tiny_config(run, conditional=request.param, max_steps=3))
    return run


@pytest.fixture(scope="module")
def exported(trained_run: Path) -> tuple[Path, dict[str, str]]:
    """One export per run, alone in its directory, shared by the read-only tests."""
    out = trained_run.parent / "exported" / "fashion-test.onnx"
    return out, export(trained_run, out, name="fashion-test")


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_graph_has_the_contract_signature(exported: tuple[Path, dict[str, str]]) -> None:
    out, metadata = exported
    model = onnx.load(str(out))
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    conditional = metadata["conditional"] == "true"
    assert list(inputs) == (["z", "label"] if conditional else ["z"])
    assert inputs["z"].elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in inputs["z"].shape.dim][1:] == [8]
    assert inputs["z"].shape.dim[0].dim_param  # symbolic batch axis
    if conditional:
        assert inputs["label"].elem_type == onnx.TensorProto.INT64
    (output,) = model.graph.output
    assert output.name == "image"
    dims = output.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 28, 28]


def test_export_is_one_self_contained_file(exported: tuple[Path, dict[str, str]]) -> None:
    out, _ = exported
    assert sorted(p.name for p in out.parent.iterdir()) == ["fashion-test.onnx"]
    model = onnx.load(str(out), load_external_data=False)
    assert not any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer
    )


@pytest.mark.parametrize("batch", [1, 5, 300])
def test_dynamic_batch_matches_pytorch(
    trained_run: Path, exported: tuple[Path, dict[str, str]], batch: int
) -> None:
    out, _ = exported
    generator, spec, _ = load_generator(trained_run / "checkpoints" / "last.pt", use_ema=True)
    rng = np.random.default_rng(batch)
    feeds = {"z": rng.standard_normal((batch, spec.latent_dim)).astype(np.float32)}
    if spec.conditional:
        feeds["label"] = rng.integers(0, 10, batch).astype(np.int64)
    (image,) = _session(out).run(["image"], feeds)
    with torch.no_grad():
        label = torch.from_numpy(feeds["label"]) if spec.conditional else None
        expected = generator(torch.from_numpy(feeds["z"]), label).numpy()
    assert image.shape == (batch, 1, 28, 28)
    assert np.abs(image - expected).max() < 1e-4
    assert image.min() >= -1.0 - 1e-6 and image.max() <= 1.0 + 1e-6  # tanh, float32 rounding


def test_metadata_round_trips(exported: tuple[Path, dict[str, str]]) -> None:
    out, written = exported
    stored = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert stored == written
    assert stored["name"] == "fashion-test"
    assert stored["format_version"] == "1"
    assert json.loads(stored["image_shape"]) == [1, 28, 28]
    assert json.loads(stored["output_range"]) == [-1.0, 1.0]
    if stored["conditional"] == "true":
        assert len(json.loads(stored["class_names"])) == int(stored["num_classes"]) == 10
    else:  # an unconditional G takes no label: no classes to describe
        assert "class_names" not in stored and "num_classes" not in stored
    assert stored["dataset"] == "fake" and stored["steps"] == "3"
    assert float(stored["parity_max_abs_diff"]) <= 1e-4
    assert len(stored["checkpoint_sha256"]) == 64 and stored["weights"] == "ema"
    text = signature_text(out)
    assert "z: float [" in text and "image: float [" in text
    assert "checkpoint_sha256" in text


def test_no_ema_exports_the_raw_generator(
    trained_run: Path, tmp_path: Path, exported: tuple[Path, dict[str, str]]
) -> None:
    raw = export(trained_run, tmp_path / "raw.onnx", use_ema=False)
    assert raw["weights"] == "raw"
    z = {"z": np.ones((1, 8), np.float32)}
    if raw["conditional"] == "true":
        z["label"] = np.zeros(1, np.int64)
    (a,) = _session(tmp_path / "raw.onnx").run(None, z)
    (b,) = _session(exported[0]).run(None, z)
    assert not np.array_equal(a, b)


def test_a_missing_checkpoint_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no checkpoint"):
        export(tmp_path, tmp_path / "g.onnx")


def test_checkpoints_without_a_recorded_spec_still_export(
    trained_run: Path, tmp_path: Path
) -> None:
    # Runs written before checkpoints carried "model_spec" were all 28×28 on a known data set.
    state = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=False)
    assert state["model_spec"]["image_shape"] == (1, 28, 28)
    del state["model_spec"], state["class_names"]
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy)
    metadata = export(legacy, tmp_path / "legacy.onnx")
    assert json.loads(metadata["image_shape"]) == [1, 28, 28]
    if metadata["conditional"] == "true":
        assert len(json.loads(metadata["class_names"])) == 10


def test_gan_export_output_reads_the_same_in_the_service_and_in_evaluation(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "round-trip.onnx"
    assert export_main([str(trained_run), "--out", str(out), "--name", "round-trip"]) == 0
    capsys.readouterr()
    written = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    served = generator.load(out, ["cpu"], intra_op_threads=1).spec  # the service's reader
    scored = GeneratorSampler.open(out, threads=1).spec  # gan-evaluate's reader
    assert served == scored
    conditional = written["conditional"] == "true"
    assert served.path == out and served.name == "round-trip"
    assert served.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert served.latent_dim == int(written["latent_dim"]) == 8
    assert list(served.image_shape) == json.loads(written["image_shape"]) == [1, 28, 28]
    assert served.conditional == conditional
    if conditional:
        assert served.num_classes == int(written["num_classes"]) == 10
        assert list(served.class_names or ()) == json.loads(written["class_names"])
    else:
        assert (served.num_classes, served.class_names) == (None, None)
    assert served.metadata == written
    assert written["format_version"] == contract.FORMAT_VERSION
    assert (served.arch, served.dataset) == ("dcgan", "fake")
