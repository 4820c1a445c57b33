"""Tiny generator ONNX files built with onnx.helper, for the service tests (no torch).

Each follows docs/onnx-contract.md: input `z` float32 [batch, latent] (+ `label` int64
[batch]), output `image` float32 [batch, C, H, W] in [-1, 1], contract metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 10
CLASS_NAMES = [
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
]


def _metadata(
    name: str, latent: int, shape: Sequence[int], conditional: bool, classes: Sequence[str] | None
) -> dict[str, str]:
    meta = {
        "format_version": "1",
        "name": name,
        "arch": "mlp",
        "latent_dim": str(latent),
        "image_shape": json.dumps(list(shape)),
        "output_range": "[-1.0, 1.0]",
        "conditional": "true" if conditional else "false",
        "dataset": "test",
        "weights": "raw",
    }
    if conditional and classes is not None:
        meta["num_classes"] = str(len(classes))
        meta["class_names"] = json.dumps(list(classes))
    return meta


def _save(
    path: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: list[onnx.TensorProto],
    meta: dict[str, str],
) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, meta)
    onnx.save(model, path)
    return path


def _io(latent: int, shape: Sequence[int], conditional: bool) -> tuple[list, list]:
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent])]
    if conditional:
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]))
    outputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *shape])]
    return inputs, outputs


def mlp_generator(
    path: Path,
    *,
    name: str | None = None,
    latent: int = 8,
    shape: Sequence[int] = (1, 28, 28),
    conditional: bool = False,
    classes: Sequence[str] | None = CLASS_NAMES,
    embedding_rows: int | None = None,
    seed: int = 0,
) -> Path:
    """image = reshape(tanh(z @ W (+ E[label]))). `embedding_rows` < classes makes big labels
    fail inside onnxruntime (Gather out of bounds): a model whose runs can fail."""
    rng = np.random.default_rng(seed)
    pixels = int(np.prod(shape))
    inits = [
        numpy_helper.from_array(
            rng.standard_normal((latent, pixels)).astype(np.float32) * 0.5, "W"
        ),
        numpy_helper.from_array(np.array([-1, *shape], np.int64), "shape"),
    ]
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"])]
    pre = "h"
    if conditional:
        rows = embedding_rows or len(classes or ())
        emb = rng.standard_normal((rows, pixels)).astype(np.float32)
        inits.append(numpy_helper.from_array(emb, "E"))
        nodes += [
            helper.make_node("Gather", ["E", "label"], ["e"], axis=0),
            helper.make_node("Add", ["h", "e"], ["he"]),
        ]
        pre = "he"
    nodes += [
        helper.make_node("Tanh", [pre], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], ["image"]),
    ]
    inputs, outputs = _io(latent, shape, conditional)
    meta = _metadata(name or path.stem, latent, shape, conditional, classes)
    return _save(path, nodes, inputs, outputs, inits, meta)


def conv_generator(path: Path, *, name: str | None = None, latent: int = 16) -> Path:
    """A small DCGAN-like graph: z -> Gemm -> Relu -> ConvTranspose x2 -> Tanh, (3, 16, 16)."""
    rng = np.random.default_rng(1)
    w = lambda *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.2)  # noqa: E731
    inits = [
        w(latent, 32 * 4 * 4),
        w(32 * 4 * 4),
        w(32, 16, 4, 4),
        w(16, 3, 4, 4),
        numpy_helper.from_array(np.array([-1, 32, 4, 4], np.int64), "s"),
    ]
    for tensor, key in zip(inits[:4], ["W", "b", "K1", "K2"], strict=True):
        tensor.name = key
    nodes = [
        helper.make_node("Gemm", ["z", "W", "b"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Reshape", ["r", "s"], ["x"]),
        helper.make_node("ConvTranspose", ["x", "K1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("ConvTranspose", ["r1", "K2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["c2"], ["image"]),
    ]
    inputs, outputs = _io(latent, (3, 16, 16), False)
    meta = _metadata(name or path.stem, latent, (3, 16, 16), False, None)
    return _save(path, nodes, inputs, outputs, inits, meta)


def slow_generator(
    path: Path, *, iterations: int, name: str | None = None, latent: int = 8
) -> Path:
    """An unconditional (1, 28, 28) generator whose every run, whatever its batch size, also
    does `iterations` 128x128 matrix products in a Loop: a model that is just slow."""
    rng = np.random.default_rng(2)
    # 2 x an orthogonal matrix: tanh(A @ acc) neither blows up nor decays into denormals
    # (which would make the time per iteration change as the loop goes on).
    a = (2 * np.linalg.qr(rng.standard_normal((128, 128)))[0]).astype(np.float32)
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["acc_in", "A"], ["m"]),
            helper.make_node("Tanh", ["m"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [128, 128]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [128, 128]),
        ],
    )
    pixels = 28 * 28
    inits = [
        numpy_helper.from_array(
            rng.standard_normal((latent, pixels)).astype(np.float32) * 0.5, "W"
        ),
        numpy_helper.from_array(a, "A"),
        numpy_helper.from_array(np.array(iterations, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "yes"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape"),
    ]
    nodes = [
        # acc0 depends on z, so onnxruntime cannot fold the loop away at load time.
        helper.make_node("ReduceSum", ["z"], ["zs"], keepdims=0),
        helper.make_node("Mul", ["zs", "zero"], ["z0"]),
        helper.make_node("Add", ["A", "z0"], ["acc0"]),
        helper.make_node("Loop", ["trips", "yes", "acc0"], ["acc"], body=body),
        helper.make_node("ReduceSum", ["acc"], ["accs"], keepdims=0),
        helper.make_node("Mul", ["accs", "zero"], ["a0"]),
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Add", ["h", "a0"], ["ha"]),
        helper.make_node("Tanh", ["ha"], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], ["image"]),
    ]
    inputs, outputs = _io(latent, (1, 28, 28), False)
    meta = _metadata(name or path.stem, latent, (1, 28, 28), False, None)
    return _save(path, nodes, inputs, outputs, inits, meta)


def not_a_generator(path: Path) -> Path:
    """A valid ONNX model with the wrong signature: x -> Relu -> y."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])]
    return _save(path, nodes, inputs, outputs, [], {"name": "relu"})


def unloadable_generator(path: Path) -> Path:
    """Right signature and metadata, but an operator onnxruntime does not have."""
    nodes = [helper.make_node("NoSuchOp", ["z"], ["image"], domain="ganserve.test")]
    inputs, outputs = _io(8, (1, 2, 2), False)
    graph = helper.make_graph(nodes, "broken", inputs, outputs)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ganserve.test", 1)],
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, _metadata(path.stem, 8, (1, 2, 2), False, None))
    onnx.save(model, path)
    return path
