"""Which onnxruntime execution providers a model is opened with: `GAN_PROVIDERS` on this machine.

`auto` (the default) asks for CUDA only where it can work — this onnxruntime build has the
CUDA provider, the CUDA driver reports a device, and the CUDA and cuDNN libraries that
provider links against load — and otherwise for the CPU alone. So a CPU-only machine never
makes onnxruntime try the CUDA provider, which prints red `Failed to load library
libonnxruntime_providers_cuda.so` / `Failed to create CUDAExecutionProvider` lines before it
falls back. An explicit `cuda` that cannot work is left out the same way; the model then runs
on the next provider listed, which the caller reports as a fallback (`gan_provider_fallback`)
with the reason from `cuda_problem`, logged once per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import sys
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import onnxruntime as ort

log = logging.getLogger("service.models.providers")

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
AUTO = "auto"
NO_CUDA_BUILD = "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
# cuDNN's major version that onnxruntime-gpu 1.19+ is built against (docs: CUDA EP requirements).
_CUDNN_MAJOR = 9


@dataclass(frozen=True)
class ProviderChoice:
    """The providers to open a session with, and what counts as a fallback from them."""

    names: list[str]  # onnxruntime provider names, in order of preference
    preferred: str  # short name of the provider the setting wants first ("auto": what it picked)
    reason: str | None = None  # why `preferred` is not first in `names`; None when it is


def _cuda_libraries(cuda_major: str) -> list[str]:
    """The shared libraries the CUDA provider of an onnxruntime built for CUDA `cuda_major`
    needs (what its `onnxruntime.preload_dlls` loads, less the optional cuFFT and NVRTC)."""
    if sys.platform == "win32":
        return [
            f"cudart64_{cuda_major}.dll",
            f"cublasLt64_{cuda_major}.dll",
            f"cublas64_{cuda_major}.dll",
            "curand64_10.dll",
            f"cudnn64_{_CUDNN_MAJOR}.dll",
        ]
    return [
        f"libcudart.so.{cuda_major}",
        f"libcublasLt.so.{cuda_major}",
        f"libcublas.so.{cuda_major}",
        "libcurand.so.10",
        f"libcudnn.so.{_CUDNN_MAJOR}",
    ]


def _load(name: str) -> ctypes.CDLL | str:
    """The library, or the loader's one-line reason it cannot be loaded."""
    try:
        return ctypes.CDLL(name)
    except OSError as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else f"{name}: cannot load"


_DRIVER = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"


def _device_problem(cuda_major: str) -> str | None:
    """Ask the CUDA driver (quietly, unlike onnxruntime) for a device new enough for the
    CUDA runtime onnxruntime was built with."""
    driver = _load(_DRIVER)
    if isinstance(driver, str):
        return f"no NVIDIA driver ({driver})"
    if (status := driver.cuInit(0)) != 0:
        return f"the NVIDIA driver finds no usable GPU (cuInit error {status})"
    count, version = ctypes.c_int(0), ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "the NVIDIA driver reports no GPU"
    driver.cuDriverGetVersion(ctypes.byref(version))
    if cuda_major.isdigit() and version.value // 1000 < int(cuda_major):
        supported = f"{version.value // 1000}.{version.value % 1000 // 10}"
        return f"the NVIDIA driver supports CUDA {supported}; onnxruntime needs CUDA {cuda_major}"
    return None


@functools.cache  # a fact about this machine and process: ask once
def cuda_device_count() -> int:
    """GPUs the CUDA driver shows this process (after CUDA_VISIBLE_DEVICES), 0 without one;
    their ids, 0 to count - 1, are what the CUDA provider's `device_id` takes."""
    driver = _load(_DRIVER)
    count = ctypes.c_int(0)
    if isinstance(driver, str) or driver.cuInit(0) != 0:
        return 0
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)


def with_cuda_options(
    names: Sequence[str], options: dict[str, str]
) -> list[str | tuple[str, dict[str, str]]]:
    """`names` for InferenceSession(providers=...), the CUDA provider given `options`
    (`device_id`, `enable_cuda_graph`)."""
    return [(name, options) if name == PROVIDERS["cuda"] else name for name in names]


@functools.cache  # a fact about this machine and process: probe it once
def cuda_problem() -> str | None:
    """Why onnxruntime's CUDA provider cannot run here, or None when it can."""
    if PROVIDERS["cuda"] not in ort.get_available_providers():
        return NO_CUDA_BUILD
    cuda_major = str(getattr(ort, "cuda_version", "") or "").split(".")[0]
    if problem := _device_problem(cuda_major):
        return problem
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        # CUDA and cuDNN from the nvidia-* pip packages (onnxruntime-gpu[cuda,cudnn]) are found
        # only once preloaded; preload_dlls prints what it misses, which _load reports instead.
        with (
            contextlib.redirect_stdout(io.StringIO()),
            warnings.catch_warnings(),
            contextlib.suppress(Exception),
        ):
            warnings.simplefilter("ignore")
            preload()
    for name in _cuda_libraries(cuda_major or "12"):
        if isinstance(loaded := _load(name), str):
            return f"a CUDA library is missing: {loaded}"
    return None


def choose_providers(
    setting: Sequence[str],
    available: Collection[str],
    cuda_problem: Callable[[], str | None] = cuda_problem,
) -> ProviderChoice:
    """The onnxruntime providers for `setting` (`["auto"]`, or short names in order of
    preference) given the providers this onnxruntime build has."""
    # Only CUDA can be missing: every onnxruntime build has the CPU provider.
    problem = cuda_problem() if PROVIDERS["cuda"] in available else NO_CUDA_BUILD
    if list(setting) == [AUTO]:
        if problem is None:
            return ProviderChoice([PROVIDERS["cuda"], PROVIDERS["cpu"]], "cuda")
        return ProviderChoice([PROVIDERS["cpu"]], "cpu")
    usable: list[str] = []
    reasons: list[str] = []
    for short in setting:
        if short == "cuda" and problem is not None:
            reasons.append(problem)
        else:
            usable.append(PROVIDERS[short])
    # The CPU provider is always there, and onnxruntime appends it anyway.
    usable = usable or [PROVIDERS["cpu"]]
    preferred = setting[0]
    reason = "; ".join(reasons) if usable[0] != PROVIDERS[preferred] else None
    if reason is not None:
        _warn_once(preferred, usable[0], reason)
    return ProviderChoice(usable, preferred, reason)


@functools.cache  # one warning per process, not one per model
def _warn_once(preferred: str, used: str, reason: str) -> None:
    short = {name: s for s, name in PROVIDERS.items()}[used]
    log.warning(
        "GAN_PROVIDERS asks for %s first, but models run on %s: %s", preferred, short, reason
    )
