"""Synthetic generator ONNX files built with onnx.helper (no torch), for the tests and bench/.

Each follows the contract (`core.contract`, docs/onnx-contract.md): input `z` float32
[batch, latent] (+ `label` int64 [batch]), output `image` float32 [batch, C, H, W] in
[-1, 1], the contract's metadata. Random weights: the speed of a trained model, not its looks.

    python -m tests.support.onnx_models OUT_DIR     # writes OUT_DIR/deploy-test.onnx (e2e)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.contract import FORMAT_VERSION, INPUT_LABEL, INPUT_Z, OUTPUT_IMAGE, Keys
from core.datasets import FASHION_MNIST_CLASSES

OPSET = 18
IR_VERSION = 10
# The test generators claim Fashion-MNIST's classes, as the shipped default model does.
CLASS_NAMES = list(FASHION_MNIST_CLASSES)
DEPLOY_NAME = "deploy-test"  # the deployment tests' model (tests/deploy, deploy/e2e)
DEPLOY_LATENT = 16


def metadata(
    name: str,
    latent: int,
    shape: Sequence[int],
    conditional: bool,
    classes: Sequence[str] | None,
    arch: str = "mlp",
) -> dict[str, str]:
    """The contract's metadata for a synthetic model."""
    meta = {
        Keys.FORMAT_VERSION: FORMAT_VERSION,
        Keys.NAME: name,
        Keys.ARCH: arch,
        Keys.LATENT_DIM: str(latent),
        Keys.IMAGE_SHAPE: json.dumps(list(shape)),
        Keys.OUTPUT_RANGE: "[-1.0, 1.0]",
        Keys.CONDITIONAL: "true" if conditional else "false",
        Keys.DATASET: "test",
        Keys.WEIGHTS: "raw",
    }
    if conditional and classes is not None:
        meta[Keys.NUM_CLASSES] = str(len(classes))
        meta[Keys.CLASS_NAMES] = json.dumps(list(classes))
    return meta


def save(
    path: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: list[onnx.TensorProto],
    meta: dict[str, str],
) -> Path:
    """One self-contained file at `path` (its stem names the graph)."""
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, meta)
    onnx.save(model, path)
    return path


def signature(
    latent: int, shape: Sequence[int], conditional: bool
) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    """The contract's inputs and output, batch axis symbolic."""
    inputs = [helper.make_tensor_value_info(INPUT_Z, TensorProto.FLOAT, ["batch", latent])]
    if conditional:
        inputs.append(helper.make_tensor_value_info(INPUT_LABEL, TensorProto.INT64, ["batch"]))
    outputs = [helper.make_tensor_value_info(OUTPUT_IMAGE, TensorProto.FLOAT, ["batch", *shape])]
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
    nodes = [helper.make_node("MatMul", [INPUT_Z, "W"], ["h"])]
    pre = "h"
    if conditional:
        rows = embedding_rows or len(classes or ())
        emb = rng.standard_normal((rows, pixels)).astype(np.float32)
        inits.append(numpy_helper.from_array(emb, "E"))
        nodes += [
            helper.make_node("Gather", ["E", INPUT_LABEL], ["e"], axis=0),
            helper.make_node("Add", ["h", "e"], ["he"]),
        ]
        pre = "he"
    nodes += [
        helper.make_node("Tanh", [pre], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], [OUTPUT_IMAGE]),
    ]
    inputs, outputs = signature(latent, shape, conditional)
    meta = metadata(name or path.stem, latent, shape, conditional, classes)
    return save(path, nodes, inputs, outputs, inits, meta)


def dcgan_generator(
    path: Path,
    *,
    name: str | None = None,
    latent: int = 100,
    channels: int = 1,
    base: int = 7,
    width: int = 64,
    seed: int = 0,
) -> Path:
    """A DCGAN-shaped unconditional generator: z → Gemm → ReLU → (2·width, base, base) →
    ConvTranspose 4/2 → ReLU → (width, 2·base, 2·base) → ConvTranspose 4/2 → tanh →
    (channels, 4·base, 4·base). The defaults are a 28×28 grey DCGAN the size of the shipped
    one (what bench/ loads); `channels=3, base=4, width=16, latent=16` is a tiny RGB one."""
    rng = np.random.default_rng(seed)

    def weight(key: str, *dims: int) -> onnx.TensorProto:
        scale = 1.0 / np.sqrt(np.prod(dims[1:]) or 1)  # keeps activations O(1) through layers
        return numpy_helper.from_array((rng.standard_normal(dims) * scale).astype(np.float32), key)

    wide = 2 * width
    inits = [
        weight("W", latent, wide * base * base),
        weight("b", wide * base * base),
        weight("K1", wide, width, 4, 4),
        weight("K2", width, channels, 4, 4),
        numpy_helper.from_array(np.array([-1, wide, base, base], np.int64), "s"),
    ]
    upsample = {"strides": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Gemm", [INPUT_Z, "W", "b"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Reshape", ["r", "s"], ["x"]),
        helper.make_node("ConvTranspose", ["x", "K1"], ["c1"], **upsample),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("ConvTranspose", ["r1", "K2"], ["c2"], **upsample),
        helper.make_node("Tanh", ["c2"], [OUTPUT_IMAGE]),
    ]
    shape = (channels, 4 * base, 4 * base)
    inputs, outputs = signature(latent, shape, False)
    meta = metadata(name or path.stem, latent, shape, False, None, arch="dcgan")
    return save(path, nodes, inputs, outputs, inits, meta)


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
        helper.make_node("ReduceSum", [INPUT_Z], ["zs"], keepdims=0),
        helper.make_node("Mul", ["zs", "zero"], ["z0"]),
        helper.make_node("Add", ["A", "z0"], ["acc0"]),
        helper.make_node("Loop", ["trips", "yes", "acc0"], ["acc"], body=body),
        helper.make_node("ReduceSum", ["acc"], ["accs"], keepdims=0),
        helper.make_node("Mul", ["accs", "zero"], ["a0"]),
        helper.make_node("MatMul", [INPUT_Z, "W"], ["h"]),
        helper.make_node("Add", ["h", "a0"], ["ha"]),
        helper.make_node("Tanh", ["ha"], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], [OUTPUT_IMAGE]),
    ]
    inputs, outputs = signature(latent, (1, 28, 28), False)
    meta = metadata(name or path.stem, latent, (1, 28, 28), False, None)
    return save(path, nodes, inputs, outputs, inits, meta)


def not_a_generator(path: Path) -> Path:
    """A valid ONNX model with the wrong signature: x -> Relu -> y."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])]
    return save(path, nodes, inputs, outputs, [], {Keys.NAME: "relu"})


def unloadable_generator(path: Path) -> Path:
    """Right signature and metadata, but an operator onnxruntime does not have."""
    nodes = [helper.make_node("NoSuchOp", [INPUT_Z], [OUTPUT_IMAGE], domain="ganserve.test")]
    inputs, outputs = signature(8, (1, 2, 2), False)
    graph = helper.make_graph(nodes, "broken", inputs, outputs)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ganserve.test", 1)],
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, metadata(path.stem, 8, (1, 2, 2), False, None))
    onnx.save(model, path)
    return path


def deploy_model(out_dir: Path) -> Path:
    """The deployment tests' model: a tiny conditional generator named `deploy-test`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return mlp_generator(
        out_dir / f"{DEPLOY_NAME}.onnx", name=DEPLOY_NAME, latent=DEPLOY_LATENT, conditional=True
    )


if __name__ == "__main__":
    print(deploy_model(Path(sys.argv[1])))
