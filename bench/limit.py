"""The machine's limit: what one process could serve with nothing between the model and the
body, measured in-process on the same model and provider as the service.

- t_image: one onnxruntime run at batch `batch` (256: the limit's definition, whatever the
  service's own max batch) with one intra-op thread, divided by the batch: the cheapest
  inference per image;
- t_encode[fmt]: exactly the service's encoding of one n = 16 answer (its float → uint8
  conversion where `service.encoding.formats.encode` takes pixels, then `encode`), per format;
- limit req/s = cores / (16 t_image + t_encode) on the CPU (every core runs models and
  encodes); with CUDA the model runs on the GPU while the cores encode, so
  min(1 / (16 t_image), cores / t_encode);
- t_request16[fmt] = one run at batch 16 + t_encode: the in-process time of one request,
  the floor of a server's latency at one client.
"""

from __future__ import annotations

import inspect
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort

from service.encoding import formats
from service.models import providers

FORMATS = ("png", "json", "npy")
_ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def one_thread_session(
    model_path: str, provider: str = "cpu", profile_prefix: str | None = None
) -> ort.InferenceSession:
    """A session laid out as one run slot of the service on a CPU: one intra-op thread, no
    inter-op parallelism; onnxruntime's profile written under `profile_prefix` if given."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model_path, options, providers=[_ORT_PROVIDERS[provider]])


def _median_s(fn: Callable[[], object], repeats: int, min_s: float) -> float:
    """Median seconds of `fn` over at least `repeats` calls and `min_s` seconds, after one
    unmeasured call."""
    fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < min_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _to_uint8() -> Callable[[np.ndarray], np.ndarray] | None:
    """The service's one float → uint8 conversion, wherever it lives now."""
    for module_name in ("core.contract", "service.encoding.formats"):
        try:
            module = __import__(module_name, fromlist=["to_uint8"])
        except ImportError:
            continue
        if hasattr(module, "to_uint8"):
            return module.to_uint8  # type: ignore[no-any-return]
    return None


def service_encoder(n: int, model: str) -> tuple[Callable[[str, np.ndarray], bytes], str]:
    """(encode(fmt, float images) -> body, a description), built from the service's
    `formats.encode` as its signature reads now: parameters are filled by name."""
    params = inspect.signature(formats.encode).parameters
    names = list(params)
    takes_pixels = "pixel" in names[1] or "uint8" in str(params[names[1]].annotation).lower()
    convert = _to_uint8() if takes_pixels else None
    if takes_pixels and convert is None:
        raise RuntimeError("service.encoding.formats.encode takes pixels but no to_uint8 was found")
    seeds = list(range(1, n + 1))
    labels = [i % 10 for i in range(n)]
    known: dict[str, Any] = {"model": model, "seed": 1, "seeds": seeds, "labels": labels}
    for name, param in list(params.items())[2:]:
        if name not in known and param.default is inspect.Parameter.empty:
            raise RuntimeError(
                f"service.encoding.formats.encode has a new parameter {name!r}: "
                "teach bench/limit.py"
            )
    kwargs = {name: known[name] for name in names[2:] if name in known}

    def encode(fmt: str, images: np.ndarray) -> bytes:
        body = images if convert is None else convert(images)
        return formats.encode(fmt, body, **kwargs)  # type: ignore[arg-type]

    how = f"formats.encode{inspect.signature(formats.encode)}"
    if convert is not None:
        how = f"{convert.__module__}.to_uint8 + {how}"
    return encode, how


def random_feeds(
    session: ort.InferenceSession, size: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A batch of `size` random inputs for a generator: z (B, latent) [+ labels (B,)]."""
    latent = int(session.get_inputs()[0].shape[1])
    out: dict[str, np.ndarray] = {"z": rng.standard_normal((size, latent), dtype=np.float32)}
    if "label" in {i.name for i in session.get_inputs()}:
        classes = int(session.get_modelmeta().custom_metadata_map.get("num_classes", "10"))
        out["label"] = rng.integers(classes, size=size, dtype=np.int64)
    return out


def measure(
    model_path: str, provider: str, batch: int = 256, n: int = 16, min_s: float = 2.0
) -> dict[str, Any]:
    """The limit on this machine; `provider` is the one the service reported active."""
    if provider == "cuda":
        providers.cuda_problem()  # loads CUDA and cuDNN from nvidia-* packages, as gan-serve
    session = one_thread_session(model_path, provider)
    rng = np.random.default_rng(0)

    def feeds(size: int) -> dict[str, np.ndarray]:
        return random_feeds(session, size, rng)

    def run(inputs: dict[str, np.ndarray]) -> Callable[[], object]:
        return lambda: session.run(["image"], inputs)

    t_batch = _median_s(run(feeds(batch)), 5, min_s)
    small = feeds(n)
    t_run16 = _median_s(run(small), 20, min_s / 2)
    (images,) = session.run(["image"], small)
    encode, how = service_encoder(n, "bench")

    def encoding_of(fmt: str) -> Callable[[], object]:
        return lambda: encode(fmt, images)

    t_encode = {fmt: _median_s(encoding_of(fmt), 20, min_s / 4) for fmt in FORMATS}
    t_image = t_batch / batch
    n_cores = cores()
    limit = {}
    for fmt, t_enc in t_encode.items():
        if provider == "cuda":
            limit[fmt] = min(1 / (n * t_image), n_cores / t_enc)
        else:
            limit[fmt] = n_cores / (n * t_image + t_enc)
    return {
        "provider": session.get_providers()[0],
        "cores": n_cores,
        "batch": batch,
        "n": n,
        "t_image_us": round(t_image * 1e6, 2),
        "t_run16_ms": round(t_run16 * 1e3, 3),
        "t_encode_ms": {f: round(t * 1e3, 3) for f, t in t_encode.items()},
        "t_request16_ms": {f: round((t_run16 + t) * 1e3, 3) for f, t in t_encode.items()},
        "limit_req_per_s": {f: round(v, 1) for f, v in limit.items()},
        "encode": how,
    }


# The figures of a measurement that vary from one measurement to the next.
_TIMES = ("t_image_us", "t_run16_ms")
_PER_FORMAT = ("t_encode_ms", "t_request16_ms", "limit_req_per_s")


def median_of(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure the median of its measurements (one run at batch 256 or 16 can be slow
    where the others are not), with each measurement's times beside them."""

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        **measured[0],
        **{key: median([m[key] for m in measured]) for key in _TIMES},
        **{
            key: {f: median([m[key][f] for m in measured]) for f in measured[0][key]}
            for key in _PER_FORMAT
        },
        **{f"{key}_each": [m[key] for m in measured] for key in _TIMES},
    }
