"""Generator ONNX files for the evaluation tests (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from core.contract import INPUT_LABEL, INPUT_Z, OUTPUT_IMAGE, Keys
from core.datasets import make_fake_dataset
from tests.support.onnx_models import IR_VERSION, OPSET, metadata, signature


def tiny_generator(path: Path, conditional: bool, arch: str = "mlp") -> Path:
    """A generator that has 'learned' the fake data: per-class mean image + small noise.

    image = tanh(atanh(template[label]) + z @ W), reshaped to (B, 1, 28, 28); unconditional
    models use the overall mean template.
    """
    fake = make_fake_dataset(512, seed=3)
    unit = fake.images.reshape(len(fake), -1) / 127.5 - 1.0
    templates = np.stack([unit[fake.labels == c].mean(axis=0) for c in range(10)])
    logits = np.arctanh(np.clip(templates, -0.98, 0.98)).astype(np.float32)  # (10, 784)
    w = np.random.default_rng(0).normal(0, 0.05, (8, 784)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([-1, 1, 28, 28], dtype=np.int64), "shape"),
    ]
    inputs, outputs = signature(8, (1, 28, 28), conditional)
    if conditional:
        inits.append(numpy_helper.from_array(logits, "table"))
        nodes = [helper.make_node("Gather", ["table", INPUT_LABEL], ["base"])]
    else:
        inits.append(numpy_helper.from_array(logits.mean(axis=0), "base"))
        nodes = []
    nodes += [
        helper.make_node("MatMul", [INPUT_Z, "w"], ["noise"]),
        helper.make_node("Add", ["noise", "base"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], [OUTPUT_IMAGE]),
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    names = [str(c) for c in range(10)]
    meta = metadata("tiny", 8, (1, 28, 28), conditional, names, arch=arch)
    helper.set_model_props(model, {**meta, Keys.DATASET: "fake"})
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path
