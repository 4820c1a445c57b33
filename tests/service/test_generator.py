"""Reading generator files against the ONNX contract, and running them in onnxruntime."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from service import generator
from service.generator import ModelError
from tests.service import models


def cuda_works(path: Path) -> bool:
    """Whether onnxruntime itself can run a model on CUDA here (no GPU on CI: False)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    session = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
    return session.get_providers()[0] == "CUDAExecutionProvider"


def test_inspect_reads_the_contract_from_graph_and_metadata(model_dir: Path) -> None:
    path = model_dir / "fashion.onnx"
    spec = generator.inspect(path)
    assert spec.name == "fashion" and spec.path == path
    assert spec.latent_dim == 8 and spec.image_shape == (1, 28, 28)
    assert spec.conditional and spec.num_classes == 10
    assert spec.class_names == tuple(models.CLASS_NAMES)
    assert spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.metadata["format_version"] == "1"


def test_name_falls_back_to_the_file_stem(tmp_path: Path) -> None:
    path = models.mlp_generator(tmp_path / "stem-name.onnx")
    model = onnx.load(path)
    del model.metadata_props[:]
    onnx.save(model, path)
    assert generator.inspect(path).name == "stem-name"


def test_a_non_generator_is_refused_with_one_line_naming_the_file(tmp_path: Path) -> None:
    path = models.not_a_generator(tmp_path / "relu.onnx")
    with pytest.raises(ModelError) as caught:
        generator.inspect(path)
    message = str(caught.value)
    assert str(path) in message and "not a generator" in message and "\n" not in message


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(ModelError, match=r"junk\.onnx"):
        generator.inspect(path)


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("latent_dim", "9", "latent_dim"),
        ("image_shape", "[1, 28, 27]", "image_shape"),
        ("conditional", "false", "conditional"),
        ("class_names", '["a", "b"]', "class_names"),
        ("name", "bad name", "model name"),
    ],
)
def test_metadata_that_contradicts_the_graph_is_refused(
    tmp_path: Path, key: str, value: str, complaint: str
) -> None:
    path = models.mlp_generator(tmp_path / "m.onnx", conditional=True)
    model = onnx.load(path)
    onnx.helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, key: value}
    )
    onnx.save(model, path)
    with pytest.raises(ModelError, match=complaint):
        generator.inspect(path)


def test_conditional_model_needs_its_classes(tmp_path: Path) -> None:
    path = models.mlp_generator(tmp_path / "m.onnx", conditional=True, classes=None)
    with pytest.raises(ModelError, match="num_classes"):
        generator.inspect(path)


def test_two_files_with_one_model_name_are_refused(tmp_path: Path) -> None:
    a = models.mlp_generator(tmp_path / "a.onnx", name="same")
    b = models.mlp_generator(tmp_path / "b.onnx", name="same")
    with pytest.raises(ModelError, match="'same'"):
        generator.check_all([a, b])


def test_discover_lists_onnx_files_or_the_one_model_path(tmp_path: Path) -> None:
    a = models.mlp_generator(tmp_path / "a.onnx")
    (tmp_path / "notes.txt").write_text("x")
    assert generator.discover(tmp_path, None) == [a]
    assert generator.discover(tmp_path / "missing", None) == []
    assert generator.discover(Path("/nowhere"), a) == [a]
    with pytest.raises(ModelError, match="no such model file"):
        generator.discover(tmp_path, tmp_path / "missing.onnx")


def test_warmup_sizes_are_powers_of_two_and_max_batch() -> None:
    assert generator.warmup_sizes(1) == [1]
    assert generator.warmup_sizes(6) == [1, 2, 4, 6]
    assert generator.warmup_sizes(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_cuda_asked_for_but_unavailable_falls_back_to_cpu(model_dir: Path) -> None:
    path = model_dir / "digits.onnx"
    gen = generator.load(path, ["cuda", "cpu"], intra_op_threads=1)
    if cuda_works(path):
        assert (gen.provider, gen.fallback, gen.io_binding) == ("cuda", False, True)
    else:
        assert (gen.provider, gen.fallback, gen.io_binding) == ("cpu", True, False)


def test_cpu_asked_for_is_not_a_fallback(model_dir: Path) -> None:
    gen = generator.load(model_dir / "digits.onnx", ["cpu"], intra_op_threads=1)
    assert (gen.provider, gen.fallback) == ("cpu", False)
    assert gen.session.get_session_options().intra_op_num_threads == 1


def test_session_uses_all_graph_optimizations(model_dir: Path) -> None:
    gen = generator.load(model_dir / "digits.onnx", ["cpu"], intra_op_threads=1)
    level = gen.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.mark.parametrize("build", [models.mlp_generator, models.conv_generator])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_results_do_not_depend_on_batch_composition(
    tmp_path: Path, build: object, threads: int
) -> None:
    path = build(tmp_path / "m.onnx")  # type: ignore[operator]
    gen = generator.load(path, ["cpu"], intra_op_threads=threads)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((33, gen.spec.latent_dim), dtype=np.float32)
    together = gen.run(z, None)
    for i in (0, 17, 32):
        assert np.array_equal(gen.run(z[i : i + 1], None)[0], together[i])
    shuffled = rng.permutation(33)
    assert np.array_equal(gen.run(z[shuffled], None), together[shuffled])


def test_io_binding_and_padding_give_the_same_images(model_dir: Path) -> None:
    path = model_dir / "fashion.onnx"
    plain = generator.load(path, ["cpu"], intra_op_threads=1)
    bound = generator.load(path, ["cpu"], intra_op_threads=1, io_binding=True)
    padded = generator.Generator(plain.spec, plain.session, ["cpu"], pad_to=[1, 2, 4, 8])
    z = np.random.default_rng(1).standard_normal((3, 8), dtype=np.float32)
    labels = np.array([0, 4, 9], np.int64)
    expected = plain.run(z, labels)
    assert expected.shape == (3, 1, 28, 28) and expected.dtype == np.float32
    assert np.array_equal(bound.run(z, labels), expected)
    assert np.array_equal(padded.run(z, labels), expected)
    assert float(np.abs(expected).max()) <= 1.0


def test_warm_up_runs_every_size_and_measures_throughput(model_dir: Path) -> None:
    gen = generator.load(model_dir / "fashion.onnx", ["cpu"], intra_op_threads=1)
    assert gen.warm_up(generator.warmup_sizes(8)) > 0


def test_onnxruntime_load_failure_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = models.unloadable_generator(tmp_path / "broken.onnx")
    assert json.loads(generator.inspect(path).metadata["image_shape"]) == [1, 2, 2]
    with pytest.raises(ModelError) as caught:
        generator.load(path, ["cpu"], intra_op_threads=1)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
