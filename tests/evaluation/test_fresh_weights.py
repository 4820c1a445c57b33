"""The untrained twin: fresh weights drawn by role from the graph alone."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from evaluation.fresh_weights import reinitialise


def _tiny_dcgan_like() -> onnx.ModelProto:
    """z → Gemm → BatchNorm → Reshape → ConvTranspose(+bias) → Tanh, plus a label table."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.normal(size=(10, 4)).astype(np.float32), "embed"),
        numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=16).astype(np.float32), "bn_s"),
        numpy_helper.from_array(rng.normal(size=16).astype(np.float32), "bn_b"),
        numpy_helper.from_array(rng.normal(size=16).astype(np.float32), "bn_m"),
        numpy_helper.from_array(rng.random(16).astype(np.float32) + 0.5, "bn_v"),
        numpy_helper.from_array(np.array([-1, 16, 1, 1], dtype=np.int64), "shape"),
        numpy_helper.from_array(rng.normal(size=(16, 1, 2, 2)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=1).astype(np.float32), "b2"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
    ]
    nodes = [
        helper.make_node("Gather", ["embed", "label"], ["e"]),
        helper.make_node("Concat", ["z", "e"], ["ze"], axis=1),
        helper.make_node("Gemm", ["ze", "w1"], ["h"]),
        helper.make_node("BatchNormalization", ["h", "bn_s", "bn_b", "bn_m", "bn_v"], ["hn"]),
        helper.make_node("Reshape", ["hn", "shape"], ["h4"]),
        helper.make_node("ConvTranspose", ["h4", "w2", "b2"], ["c"], strides=[2, 2]),
        helper.make_node("Mul", ["c", "half"], ["c2"]),
        helper.make_node("Tanh", ["c2"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 2, 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_reinitialise_dcgan_redraws_weights_by_role_and_keeps_the_graph() -> None:
    model = _tiny_dcgan_like()
    fresh, summary = reinitialise(model, "dcgan", seed=0)
    new, old = _arrays(fresh), _arrays(model)
    assert summary["reinitialised"] == {
        "bias": 1,
        "bn_mean": 1,
        "bn_scale": 1,
        "bn_shift": 1,
        "bn_var": 1,
        "embedding": 1,
        "weight": 2,
    }
    assert abs(new["w1"].std() - 0.02) < 0.01 and abs(new["embed"].std() - 0.02) < 0.01
    assert abs(new["bn_s"].mean() - 1.0) < 0.02
    np.testing.assert_array_equal(new["bn_m"], 0.0)
    np.testing.assert_array_equal(new["bn_v"], 1.0)
    np.testing.assert_array_equal(new["b2"], 0.0)
    np.testing.assert_array_equal(new["shape"], old["shape"])  # shapes and constants kept
    np.testing.assert_array_equal(new["half"], old["half"])
    assert fresh.graph.node == model.graph.node
    onnx.checker.check_model(fresh)


def test_reinitialise_mlp_uses_pytorch_default_bounds() -> None:
    fresh, _ = reinitialise(_tiny_dcgan_like(), "mlp", seed=0)
    new = _arrays(fresh)
    assert np.abs(new["w1"]).max() <= 1 / np.sqrt(8)  # Gemm B (in=8, out=16)
    assert np.abs(new["w2"]).max() <= 1 / np.sqrt(1 * 2 * 2)  # ConvT fan_in = dim1 · k · k
    assert abs(new["embed"].std() - 1.0) < 0.4  # nn.Embedding: N(0, 1)
    np.testing.assert_array_equal(new["bn_s"], 1.0)
