"""Fresh weights for a generator graph: its untrained twin, rebuilt from the ONNX file alone.

`gan-evaluate` scores every model next to an untrained twin (`reinitialise`): same graph,
same shapes, fresh random weights drawn the way `training.models` draws them before the
first training step (a description, not an import: no torch here).
Only the file is needed, so any generator that follows docs/onnx-contract.md can be scored.

Each float initializer gets a role from the node that consumes it (looking through
Identity/Cast/Transpose/Reshape/...):

| role      | consumer                               | dcgan       | mlp, other: PyTorch default |
|-----------|----------------------------------------|-------------|-----------------------------|
| weight    | Conv/ConvTranspose W, Gemm B, MatMul B | N(0, 0.02)  | U(+-1/sqrt(fan_in))         |
| bias      | Conv/Gemm C, Add after MatMul/Conv     | 0           | U(+-1/sqrt(fan_in))         |
| embedding | Gather data (label embedding table)    | N(0, 0.02)  | N(0, 1)                     |
| bn_scale  | BatchNormalization scale               | N(1, 0.02)  | 1                           |
| bn_shift  | BatchNormalization B                   | 0           | 0                           |
| bn_mean   | BatchNormalization input_mean          | 0           | 0                           |
| bn_var    | BatchNormalization input_var           | 1           | 1                           |

Everything else (integer shapes, scalars, unrecognised tensors) is kept as it is. An
exporter that folds BatchNorm into the preceding weights leaves a plain weight, which is then
redrawn as one: the same as a fresh BN layer (scale ≈ 1, running stats 0/1) up to ε.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

_PASS_THROUGH = {"Identity", "Cast", "Transpose", "Reshape", "Unsqueeze", "Squeeze", "Flatten"}
_LINEAR = {"MatMul", "Gemm", "Conv", "ConvTranspose"}
_BN_ROLES = {1: "bn_scale", 2: "bn_shift", 3: "bn_mean", 4: "bn_var"}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    table: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            table[name].append((node, index))
    return table


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _fan_in(node: onnx.NodeProto, shape: tuple[int, ...]) -> int:
    """PyTorch's fan_in for the weight of `node` (dim 1 x kernel for both conv kinds)."""
    if node.op_type in ("Conv", "ConvTranspose"):
        return int(shape[1] * math.prod(shape[2:]))
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return int(shape[1] if trans_b else shape[0])
    return int(shape[0])  # MatMul: x (B, in) @ W (in, out)


def _role(
    name: str,
    shape: tuple[int, ...],
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]],
    producers: dict[str, onnx.NodeProto],
    weight_fan_in: dict[str, int],
) -> tuple[str, int] | None:
    """(role, fan_in) of an initializer, or None to keep it."""
    frontier = [name]
    for _ in range(4):  # follow at most a few pass-through nodes
        uses = [use for current in frontier for use in consumers.get(current, [])]
        if not uses:
            return None
        node, index = uses[0]
        if node.op_type in _PASS_THROUGH and index == 0:
            frontier = list(node.output)
            continue
        op = node.op_type
        if op in ("Conv", "ConvTranspose", "Gemm") and index == 1 and len(shape) >= 2:
            return "weight", _fan_in(node, shape)
        if op == "MatMul" and index == 1 and len(shape) == 2:
            return "weight", _fan_in(node, shape)
        if op in ("Conv", "ConvTranspose", "Gemm") and index == 2:
            return "bias", weight_fan_in.get(node.input[1], 0)
        if op == "Add" and len(shape) <= 2:
            other = node.input[1 - index] if len(node.input) == 2 else ""
            producer = producers.get(other)
            if producer is not None and producer.op_type in _LINEAR and len(producer.input) > 1:
                return "bias", weight_fan_in.get(producer.input[1], 0)
            return None
        if op == "BatchNormalization" and index in _BN_ROLES:
            return _BN_ROLES[index], 0
        if op == "Gather" and index == 0 and len(shape) == 2:
            return "embedding", 0
        return None
    return None


def _draw(
    role: str, fan_in: int, shape: tuple[int, ...], dcgan: bool, rng: np.random.Generator
) -> np.ndarray:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    if role == "weight":
        return rng.normal(0.0, 0.02, shape) if dcgan else rng.uniform(-bound, bound, shape)
    if role == "bias":
        return np.zeros(shape) if dcgan else rng.uniform(-bound, bound, shape)
    if role == "embedding":
        return rng.normal(0.0, 0.02 if dcgan else 1.0, shape)
    if role == "bn_scale":
        return rng.normal(1.0, 0.02, shape) if dcgan else np.ones(shape)
    if role == "bn_var":
        return np.ones(shape)
    return np.zeros(shape)  # bn_shift, bn_mean


def reinitialise(
    model: onnx.ModelProto, arch: str, seed: int = 0
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """A copy of `model` with fresh weights for `arch`, and a summary of what was redrawn."""
    fresh = onnx.ModelProto()
    fresh.CopyFrom(model)
    graph = fresh.graph
    consumers, producers = _consumers(graph), _producers(graph)
    dcgan = arch == "dcgan"
    rng = np.random.default_rng(seed)
    float_inits = [
        init
        for init in graph.initializer
        if init.data_type
        in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
    ]
    roles: dict[str, tuple[str, int]] = {}
    weight_fan_in: dict[str, int] = {}
    # weights first: a bias's bound needs its weight's fan_in
    for init in float_inits:
        found = _role(init.name, tuple(init.dims), consumers, producers, {})
        if found is not None and found[0] == "weight":
            roles[init.name] = found
            weight_fan_in[init.name] = found[1]
    for init in float_inits:
        if init.name not in roles:
            found = _role(init.name, tuple(init.dims), consumers, producers, weight_fan_in)
            if found is not None:
                roles[init.name] = found
    counts: Counter[str] = Counter()
    for init in graph.initializer:
        if init.name not in roles:
            continue
        role, fan_in = roles[init.name]
        old = numpy_helper.to_array(init)
        new = _draw(role, fan_in, old.shape, dcgan, rng).astype(old.dtype)
        init.CopyFrom(numpy_helper.from_array(new, init.name))
        counts[role] += 1
    scheme = "dcgan: N(0, 0.02) weights" if dcgan else "PyTorch default: U(+-1/sqrt(fan_in))"
    return fresh, {
        "scheme": scheme,
        "seed": seed,
        "reinitialised": dict(sorted(counts.items())),
        "kept": len(graph.initializer) - sum(counts.values()),
    }
