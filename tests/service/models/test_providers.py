"""GAN_PROVIDERS on this machine: `auto` picks CUDA only where it works and is silent about
it; an explicit `cuda` that cannot work falls back with one warning and gan_provider_fallback.

`choose_providers` is tested as the function it is (the providers an onnxruntime build has and
the CUDA probe's answer are its inputs); the start is tested in a real `gan-serve`, whose
stderr is where onnxruntime's own error lines would land.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import onnxruntime as ort
import pytest

from service.models import providers
from service.models.providers import (
    NO_CUDA_BUILD,
    PROVIDERS,
    ProviderChoice,
    choose_providers,
    cuda_device_count,
    cuda_problem,
    with_cuda_options,
)
from tests.support.gan_serve import gan_serve, metric_samples

CUDA, CPU = PROVIDERS["cuda"], PROVIDERS["cpu"]
GPU_BUILD = [CUDA, CPU]  # what onnxruntime-gpu reports
CPU_BUILD = ["AzureExecutionProvider", CPU]  # what onnxruntime reports


def works() -> str | None:
    return None


def no_gpu() -> str:
    return "the NVIDIA driver reports no GPU"


@pytest.mark.parametrize(
    ("setting", "available", "probe", "expected"),
    [
        (["auto"], GPU_BUILD, works, ProviderChoice([CUDA, CPU], "cuda")),
        (["auto"], GPU_BUILD, no_gpu, ProviderChoice([CPU], "cpu")),
        (["auto"], CPU_BUILD, works, ProviderChoice([CPU], "cpu")),
        (["cpu"], GPU_BUILD, works, ProviderChoice([CPU], "cpu")),
        (["cuda", "cpu"], GPU_BUILD, works, ProviderChoice([CUDA, CPU], "cuda")),
        (["cpu", "cuda"], GPU_BUILD, works, ProviderChoice([CPU, CUDA], "cpu")),
    ],
    ids=["auto-gpu", "auto-no-gpu", "auto-cpu-build", "cpu", "cuda-gpu", "cpu-first"],
)
def test_choice_without_fallback(
    setting: list[str], available: list[str], probe: object, expected: ProviderChoice
) -> None:
    assert choose_providers(setting, available, probe) == expected  # type: ignore[arg-type]


def test_auto_never_probes_cuda_on_a_build_without_it() -> None:
    def must_not_run() -> str | None:
        raise AssertionError("probed CUDA on a CPU build")

    assert choose_providers(["auto"], CPU_BUILD, must_not_run).names == [CPU]


@pytest.mark.parametrize(
    ("available", "probe", "reason"),
    [
        (GPU_BUILD, no_gpu, "the NVIDIA driver reports no GPU"),
        (CPU_BUILD, works, NO_CUDA_BUILD),
    ],
    ids=["no-gpu", "cpu-build"],
)
def test_explicit_cuda_that_cannot_work_falls_back_with_the_reason(
    available: list[str], probe: object, reason: str
) -> None:
    choice = choose_providers(["cuda", "cpu"], available, probe)  # type: ignore[arg-type]
    assert (choice.names, choice.preferred, choice.reason) == ([CPU], "cuda", reason)


def test_the_probe_answers_on_this_machine() -> None:
    problem = cuda_problem()
    if CUDA not in ort.get_available_providers():
        assert problem == NO_CUDA_BUILD
    else:  # a GPU build: the answer is a reason or None, never an exception
        assert problem is None or problem.strip()


def test_the_device_count_answers_on_this_machine() -> None:
    count = cuda_device_count()
    assert isinstance(count, int) and count >= 0
    if isinstance(providers._load(providers._DRIVER), str):  # no NVIDIA driver here
        assert count == 0


def test_cuda_options_go_to_the_cuda_provider_alone() -> None:
    options = {"device_id": "1", "enable_cuda_graph": "1"}
    assert with_cuda_options([CUDA, CPU], options) == [(CUDA, options), CPU]
    assert with_cuda_options([CPU], options) == [CPU]


def start_and_stop(model_dir: Path, providers: str, log_path: Path) -> dict[str, float]:
    """Run gan-serve with GAN_PROVIDERS=`providers` until ready; return its fallback gauges
    by model. Its whole output lands in `log_path`."""
    env = {"GAN_MODEL_DIR": str(model_dir), "GAN_PROVIDERS": providers}
    with gan_serve(env, log_path) as served:
        samples = metric_samples(httpx.get(served.url + "/metrics").text)
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0
    return {
        dict(labels)["model"]: value
        for (name, labels), value in samples.items()
        if name == "gan_provider_fallback"
    }


def onnxruntime_lines(log: str) -> list[str]:
    """onnxruntime's own log lines ([E:onnxruntime:...], [W:onnxruntime:...])."""
    return [line for line in log.splitlines() if ":onnxruntime:" in line]


def test_auto_starts_quietly_on_whatever_this_machine_has(model_dir: Path, tmp_path: Path) -> None:
    fallback = start_and_stop(model_dir, "auto", tmp_path / "server.log")
    log = (tmp_path / "server.log").read_text()
    assert fallback == {"digits": 0.0, "fashion": 0.0}
    assert onnxruntime_lines(log) == []
    assert " WARNING " not in log and " ERROR " not in log, log
    provider = "cuda" if cuda_problem() is None else "cpu"
    assert log.count(f": provider {provider}") == 2, log


def test_explicit_cuda_that_cannot_work_warns_once_and_sets_the_fallback_gauge(
    model_dir: Path, tmp_path: Path
) -> None:
    fallback = start_and_stop(model_dir, "cuda,cpu", tmp_path / "server.log")
    log = (tmp_path / "server.log").read_text()
    assert onnxruntime_lines(log) == []
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    problem = cuda_problem()
    if problem is None:  # a machine where CUDA works: it is used, nothing to warn about
        assert fallback == {"digits": 0.0, "fashion": 0.0} and warnings == []
    else:
        assert fallback == {"digits": 1.0, "fashion": 1.0}
        assert len(warnings) == 1, log
        assert "asks for cuda first, but models run on cpu" in warnings[0]
        assert problem in warnings[0]
