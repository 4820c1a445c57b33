"""A tiny class-conditional generator ONNX file, for the deployment tests (no torch).

It follows docs/onnx-contract.md: inputs `z` float32 [batch, latent] and `label` int64
[batch], output `image` float32 [batch, 1, 28, 28] in [-1, 1], the contract's metadata. The
deployment tests need a model to serve before the trained ones land in models/:

    python tests/deploy/tiny_model.py OUT_DIR      # writes OUT_DIR/deploy-test.onnx
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "deploy-test"
LATENT = 16
SHAPE = (1, 28, 28)  # (C, H, W)
CLASSES = [
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
# IR 10 / opset 18: loadable by any onnxruntime >= 1.18, the project's lower bound, so the
# file works with whatever onnxruntime a container image installed.
IR_VERSION, OPSET = 10, 18


def build(out_dir: Path) -> Path:
    """image = reshape(tanh(z @ W + E[label])); returns the file's path."""
    rng = np.random.default_rng(0)
    pixels = int(np.prod(SHAPE))
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.3, (LATENT, pixels)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(0, 0.3, (len(CLASSES), pixels)).astype(np.float32), "E"),
        numpy_helper.from_array(np.array([-1, *SHAPE], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["zw"]),  # (B, 784)
        helper.make_node("Gather", ["E", "label"], ["e"], axis=0),  # (B, 784)
        helper.make_node("Add", ["zw", "e"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["image"]),  # (B, 1, 28, 28)
    ]
    inputs = [
        helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT]),
        helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
    ]
    outputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *SHAPE])]
    model = helper.make_model(
        helper.make_graph(nodes, NAME, inputs, outputs, weights),
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model,
        {
            "format_version": "1",
            "name": NAME,
            "arch": "mlp",
            "latent_dim": str(LATENT),
            "image_shape": json.dumps(list(SHAPE)),
            "output_range": "[-1.0, 1.0]",
            "conditional": "true",
            "num_classes": str(len(CLASSES)),
            "class_names": json.dumps(CLASSES),
            "dataset": "none: random weights for deployment tests",
            "weights": "raw",
        },
    )
    onnx.checker.check_model(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{NAME}.onnx"
    onnx.save(model, path)
    return path


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
