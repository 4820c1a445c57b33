"""Export a trained generator to one self-describing ONNX file (docs/onnx-contract.md).

    gan-export runs/cdcgan --out models/fashion-cdcgan.onnx --name fashion-cdcgan
    gan-export --inspect models/fashion-cdcgan.onnx

The export is checked before it is written: onnx.checker, parity with PyTorch at batch
1, 7 and 64 (fails above 1e-4), and batch-1-versus-batch-N consistency.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from core import contract
from core.console import OneLineParser, fail
from core.contract import Keys
from core.datasets import class_names_for
from training import checkpoint
from training.config import TrainConfig
from training.exporter_notices import no_torchvision_notices
from training.models import ModelSpec, build_models
from training.standing import with_standing_statistics

PARITY_TOLERANCE = 1e-4
PARITY_BATCHES = (1, 7, 64)


class ExportError(Exception):
    """The checkpoint cannot be exported, or the export failed a check. One line."""


class _GeneratorGraph(nn.Module):
    """The exported signature: (z[, label]) → image, names fixed by the contract."""

    def __init__(self, generator: nn.Module, conditional: bool) -> None:
        super().__init__()
        self.generator = generator
        self.conditional = conditional

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, label if self.conditional else None)


def resolve_checkpoint(source: Path) -> Path:
    """A run directory means its checkpoints/last.pt; a file is used as is."""
    path = source / "checkpoints" / "last.pt" if source.is_dir() else source
    if not path.is_file():
        raise ExportError(f"no checkpoint at {path}")
    return path


def load_generator(path: Path, use_ema: bool) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    try:
        state = checkpoint.load(path)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise ExportError(f"{path}: cannot read checkpoint ({error})") from None
    spec, classes = _spec_and_classes(state)
    generator, _ = build_models(spec)
    weights = state["generator"]
    if use_ema and state.get("generator_ema") is not None:
        weights = state["generator_ema"]
    generator.load_state_dict(weights)
    state["class_names"] = classes
    state["weights"] = "ema" if weights is state.get("generator_ema") else "raw"
    # (training) the run's standing BatchNorm statistics, as its sample grids used them
    generator = with_standing_statistics(generator, spec, state["config"])
    return generator.eval(), spec, state


def _spec_and_classes(state: dict[str, Any]) -> tuple[ModelSpec, list[str]]:
    """The generator's spec and label names as the run recorded them. Checkpoints written
    before runs recorded them (no "model_spec") were all 28×28 with the data set's classes."""
    if "model_spec" in state:
        fields = state["model_spec"]
        return ModelSpec(**{**fields, "image_shape": tuple(fields["image_shape"])}), list(
            state["class_names"]
        )
    config = TrainConfig.from_dict(state["config"]).resolve()
    classes = list(class_names_for(config.dataset))
    assert config.g_width is not None and config.d_width is not None
    spec = ModelSpec(
        config.arch,
        config.latent_dim,
        (1, 28, 28),
        len(classes),
        config.conditional,
        config.g_width,
        config.d_width,
    )
    return spec, classes


def _example_inputs(spec: ModelSpec, batch: int, seed: int) -> dict[str, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    inputs = {contract.INPUT_Z: torch.randn(batch, spec.latent_dim, generator=rng)}
    if spec.conditional:
        inputs[contract.INPUT_LABEL] = torch.randint(0, spec.num_classes, (batch,), generator=rng)
    return inputs


def to_onnx(generator: nn.Module, spec: ModelSpec, opset: int) -> onnx.ModelProto:
    """Trace with the dynamo exporter, batch axis declared dynamic, opset pinned."""
    graph = _GeneratorGraph(generator, spec.conditional).eval()
    example = _example_inputs(spec, batch=4, seed=0)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    shapes: dict[str, Any] = {contract.INPUT_Z: {0: batch}}
    if spec.conditional:
        shapes[contract.INPUT_LABEL] = {0: batch}
    with warnings.catch_warnings(), no_torchvision_notices():
        # The exporter's internal deprecation and axis-renaming notices are not actionable.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        program = _export(graph, example, opset, shapes)
    return program.model_proto


def _export(
    graph: nn.Module, example: dict[str, torch.Tensor], opset: int, shapes: dict[str, Any]
) -> Any:
    program = torch.onnx.export(
        graph,
        args=(),
        kwargs=example,
        input_names=list(example),
        output_names=[contract.OUTPUT_IMAGE],
        opset_version=opset,
        dynamo=True,
        dynamic_shapes=shapes,
        external_data=False,
        optimize=True,
        verbose=False,
    )
    assert program is not None
    return program


def check_parity(model: onnx.ModelProto, generator: nn.Module, spec: ModelSpec) -> float:
    """Worst |ONNX − PyTorch| over several batch sizes; also batch 1 == row 0 of batch N."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in PARITY_BATCHES:
        inputs = _example_inputs(spec, batch, seed=batch)
        with torch.no_grad():
            expected = generator(inputs[contract.INPUT_Z], inputs.get(contract.INPUT_LABEL)).numpy()
        feeds = {name: tensor.numpy() for name, tensor in inputs.items()}
        (actual,) = session.run([contract.OUTPUT_IMAGE], feeds)
        worst = max(worst, float(np.abs(actual - expected).max()))
        single_feeds = {name: value[:1] for name, value in feeds.items()}
        (single,) = session.run([contract.OUTPUT_IMAGE], single_feeds)
        if not np.allclose(single[0], actual[0], atol=PARITY_TOLERANCE):
            raise ExportError(f"batch 1 and batch {batch} disagree: BatchNorm left in train mode?")
    if worst > PARITY_TOLERANCE:
        raise ExportError(f"ONNX/PyTorch parity {worst:.3g} exceeds {PARITY_TOLERANCE:g}")
    return worst


def build_metadata(
    spec: ModelSpec,
    state: dict[str, Any],
    name: str,
    source: Path,
    checkpoint_path: Path,
    parity: float,
) -> dict[str, str]:
    config = TrainConfig.from_dict(state["config"])
    # An unconditional G takes no label: the data set's classes (the spec still counts them)
    # say nothing about it, and the contract's reader ignores them.
    classes = (
        {
            Keys.NUM_CLASSES: str(spec.num_classes),
            Keys.CLASS_NAMES: json.dumps(state["class_names"]),
        }
        if spec.conditional
        else {}
    )
    return {
        Keys.FORMAT_VERSION: contract.FORMAT_VERSION,
        Keys.NAME: name,
        Keys.ARCH: spec.arch,
        Keys.LATENT_DIM: str(spec.latent_dim),
        Keys.IMAGE_SHAPE: json.dumps(list(spec.image_shape)),
        Keys.OUTPUT_RANGE: json.dumps([-1.0, 1.0]),
        Keys.CONDITIONAL: "true" if spec.conditional else "false",
        **classes,
        Keys.DATASET: config.dataset,
        Keys.DATASET_FINGERPRINT: state["dataset_fingerprint"],
        Keys.EPOCHS: str(state["epoch"]),
        Keys.STEPS: str(state["step"]),
        Keys.CONFIG_HASH: config.resolve().hash(),
        Keys.TRAINING_RUN: str(source.parent.parent if source.is_file() else source),
        Keys.CHECKPOINT_SHA256: checkpoint.sha256_file(checkpoint_path),
        Keys.WEIGHTS: state["weights"],
        Keys.PARITY_MAX_ABS_DIFF: f"{parity:.3g}",
        Keys.EXPORTED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        Keys.PACKAGE_VERSION: package_metadata.version("ganserve"),
    }


def write_model(model: onnx.ModelProto, metadata: dict[str, str], out: Path) -> None:
    """Attach metadata, run onnx.checker and the contract's reader (the one the service and
    gan-evaluate use), and write one file (no external data) atomically."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    try:
        contract.inspect(out, data)
    except contract.ModelError as error:
        raise ExportError(f"the export breaks the ONNX contract: {error}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, suffix=".onnx.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; a served model must be readable
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export(
    source: Path, out: Path, opset: int = 18, use_ema: bool = True, name: str | None = None
) -> dict[str, str]:
    checkpoint_path = resolve_checkpoint(source)
    generator, spec, state = load_generator(checkpoint_path, use_ema)
    model = to_onnx(generator, spec, opset)
    parity = check_parity(model, generator, spec)
    metadata = build_metadata(spec, state, name or out.stem, source, checkpoint_path, parity)
    write_model(model, metadata, out)
    return metadata


def signature_text(path: Path) -> str:
    """The graph signature, what the contract's reader makes of it, and the metadata of any
    ONNX file, as readable text."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ExportError(f"{path}: not a readable ONNX file ({error})") from None
    verdict, ignored = _contract_view(path)

    def describe(values: Any) -> list[str]:
        lines = []
        for value in values:
            tensor = value.type.tensor_type
            dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
            kind = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
            lines.append(f"  {value.name}: {kind} [{', '.join(dims)}]")
        return lines

    # the default domain's opset; none in a file that only parses as an (empty) ModelProto
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "none")
    lines = [
        f"{path} (opset {opset}, {path.stat().st_size} bytes)",
        "inputs:",
        *describe(model.graph.input),
        "outputs:",
        *describe(model.graph.output),
        f"contract: {verdict}",
        "metadata:",
    ]
    shown = [p for p in model.metadata_props if p.key not in ignored]
    width = max((len(p.key) for p in shown), default=0)
    lines += [f"  {p.key.ljust(width)}  {p.value}" for p in shown]
    return "\n".join(lines)


def _contract_view(path: Path) -> tuple[str, set[str]]:
    """The contract reader's verdict on `path` in words, and the metadata keys it ignores
    (the classes of an unconditional model, which files exported before they were left out
    still carry)."""
    try:
        spec = contract.inspect(path)
    except contract.ModelError as error:
        return f"refused: {error}", set()
    if spec.conditional:
        return f"a conditional generator of {spec.num_classes} classes", set()
    ignored = {Keys.NUM_CLASSES, Keys.CLASS_NAMES} & set(spec.metadata)
    note = f"; its {' and '.join(sorted(ignored))} metadata are ignored" if ignored else ""
    return f"an unconditional generator (no label input, no classes{note})", ignored


def parser() -> OneLineParser:
    p = OneLineParser(prog="gan-export", description="Export a generator checkpoint to ONNX.")
    p.add_argument(
        "source",
        type=Path,
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="a run directory (uses checkpoints/last.pt) or a .pt file",
    )
    p.add_argument("--out", type=Path, help="output NAME.onnx (required unless --inspect)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--no-ema", action="store_true", help="export the raw G, not its EMA copy")
    p.add_argument("--name", help="model name in the metadata (default: --out's stem)")
    p.add_argument(
        "--inspect",
        action="store_true",
        help="print SOURCE.onnx's signature and metadata, then exit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        if args.inspect:
            print(signature_text(args.source))
            return 0
        if args.out is None:
            fail(p.prog, "--out NAME.onnx is required")
        if not 13 <= args.opset <= 23:
            fail(p.prog, f"--opset {args.opset} is outside the supported 13..23")
        metadata = export(args.source, args.out, args.opset, not args.no_ema, args.name)
    except ExportError as error:
        fail(p.prog, str(error))
    print(
        f"onnx.checker: ok; parity max abs diff {metadata['parity_max_abs_diff']} "
        f"(limit {PARITY_TOLERANCE:g}) at batch {', '.join(map(str, PARITY_BATCHES))}"
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {metadata['weights']} weights)")
    return 0
