"""GAN_CUDA_GRAPHS: where a model is loaded with CUDA graphs, and what happens when onnxruntime
refuses them. The decision (`loading.with_graph_fallback`) is tested with attempts that
really load models on the CPU: the refusal is onnxruntime's own error on a model it cannot
open, as a CUDA session that refuses graph capture fails when it opens or warms up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.contract import ModelError
from service.models import generator, loading
from service.models.generator import Generator
from service.settings import Settings
from tests.support import onnx_models as models


class Attempts:
    """attempt(graphs): loads a model that onnxruntime refuses when graphs are on, a good one
    otherwise; records each call."""

    def __init__(self, tmp_path: Path) -> None:
        self.refused = models.unloadable_generator(tmp_path / "refused.onnx")
        self.good = models.mlp_generator(tmp_path / "good.onnx")
        self.calls: list[bool] = []

    def __call__(self, graphs: bool) -> Generator:
        self.calls.append(graphs)
        return generator.load(self.refused if graphs else self.good, ["cpu"], 1)


def test_auto_falls_back_without_graphs_with_one_warning_naming_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    attempt = Attempts(tmp_path)
    with caplog.at_level(logging.WARNING, logger="service"):
        gen = loading.with_graph_fallback(attempt, "auto", True, "good")
    assert attempt.calls == [True, False] and gen.spec.name == "good"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("model good: CUDA graphs off, onnxruntime cannot use them: ")
    assert "refused.onnx: onnxruntime cannot load it: " in warnings[0]
    assert "NoSuchOp" in warnings[0]


def test_on_makes_a_refusal_a_load_error(tmp_path: Path) -> None:
    attempt = Attempts(tmp_path)
    with pytest.raises(ModelError) as caught:
        loading.with_graph_fallback(attempt, "on", True, "good")
    assert attempt.calls == [True]
    message = str(caught.value)
    assert "refused.onnx: onnxruntime cannot load it: " in message
    assert message.endswith("(with GAN_CUDA_GRAPHS=on; auto runs such a model without them)")


@pytest.mark.parametrize(("setting", "on_cuda"), [("off", True), ("auto", False), ("on", False)])
def test_no_graphs_are_tried_when_off_or_off_cuda(
    tmp_path: Path, setting: str, on_cuda: bool
) -> None:
    attempt = Attempts(tmp_path)
    loading.with_graph_fallback(attempt, setting, on_cuda, "good")
    assert attempt.calls == [False]


def test_a_failure_that_is_not_onnxruntime_s_is_not_retried() -> None:
    calls: list[bool] = []

    def attempt(graphs: bool) -> None:
        calls.append(graphs)
        raise ModelError("GAN_DEVICES=3: the NVIDIA driver reports 1 GPU(s)")

    with pytest.raises(ModelError, match="GAN_DEVICES=3"):
        loading.with_graph_fallback(attempt, "auto", True, "m")
    assert calls == [True]


def test_the_load_line_names_provider_devices_and_graphs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = models.mlp_generator(tmp_path / "m.onnx")
    settings = Settings(
        model_path=path, providers=["cpu"], cuda_graphs="on", devices=(1,), intra_op_threads=1
    )
    spec = loading.read_specs(settings)[0]
    with caplog.at_level(logging.INFO, logger="service"):
        loaded = loading.load_model(spec, settings, 1 << 30)
    assert loaded.generator.provider == "cpu" and not loaded.generator.cuda_graphs
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model m from")]
    assert len(lines) == 1
    assert ": provider cpu, CUDA graphs off, " in lines[0] and "intra-op threads" in lines[0]
