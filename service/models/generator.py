"""Generator ONNX files: find them, open them in onnxruntime, run them.

Each file is checked against the ONNX contract (`core.contract.inspect`,
docs/onnx-contract.md) before a session is opened on it; a file that breaks it is refused
with one line naming the file (`ModelError`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

# The contract's reader lives in core.contract; ModelError stays importable from here.
from core.contract import GeneratorSpec, Images, ModelError, inspect
from service.models.devices import DevicePool, choose_devices
from service.models.engine import Engine, RunPath, RunStop
from service.models.providers import (
    PROVIDERS,
    choose_providers,
    cuda_device_count,
    with_cuda_options,
)

__all__ = [
    "PROVIDERS",
    "Generator",
    "Images",
    "ModelError",
    "RunStop",
    "RuntimeFailed",
    "load",
    "warmup_sizes",
]

log = logging.getLogger("service.models.generator")

_SHORT = {full: short for short, full in PROVIDERS.items()}
# onnxruntime's CUDA provider captures a session's graph on a thread's third run of it (two
# regular runs first, for their memory); one more replays it.
_CAPTURED_RUNS = 4


_BUILD_PATH = re.compile(r"(?:/[\w.+-]+)+\.(?:h|hpp|cc|cpp|cu|cuh|c):\d+\s*")
_CPP_FUNCTION = re.compile(r"\b\w+(?:::[\w~]+)+\([^()]*\)\s*(?:const\s*)?")
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")


class RuntimeFailed(ModelError):
    """onnxruntime refused the model: opening a session on it, or a warm-up run, failed."""


def runtime_error_line(exc: BaseException, limit: int = 300) -> str:
    """onnxruntime's error as one short line, without its build paths and C++ signatures
    (they say nothing to a user and should not reach an unauthenticated /readyz)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = _ORT_PREFIX.sub("", _CPP_FUNCTION.sub("", _BUILD_PATH.sub("", text)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def warmup_sizes(max_batch: int) -> list[int]:
    """The batch sizes warmed up at start: powers of two below max_batch, and max_batch.

    On CUDA the generator pads every run up to one of these and runs each size on its own
    session, so every session always sees one shape; on the CPU they size the arena.
    """
    sizes = [1 << k for k in range(max_batch.bit_length()) if (1 << k) < max_batch]
    return [*sizes, max_batch]


class Generator:
    """The onnxruntime sessions serving one generator file: one engine per device.

    One session, except where runs are padded (CUDA) and an engine can open more: then each
    padded size gets a session of its own. onnxruntime's CUDA kernels redo their set-up
    whenever a session's input shape differs from its last run's (on a GPU, alternating batch
    sizes cost tens of times a run at a steady size: docs/benchmarks.md), so one session per
    size keeps every session's shape steady. Several GPUs: one engine each, and each run
    goes to the device with the fewest runs in flight (`DevicePool`).
    """

    def __init__(
        self,
        spec: GeneratorSpec,
        engines: Engine | Mapping[int, Engine],
        requested: Sequence[str],
        *,
        pad_to: Sequence[int] = (),
        cuda_graphs: bool = False,
    ) -> None:
        self.spec = spec
        self.pool = DevicePool(engines if isinstance(engines, Mapping) else {0: engines})
        active = self.session.get_providers()[0]
        self.provider = _SHORT.get(active, active)
        self.fallback = bool(requested) and self.provider != requested[0]
        self.cuda_graphs = cuda_graphs
        # The CUDA device ids the model runs on; none on the CPU.
        self.devices: tuple[int, ...] = tuple(self.pool.ids) if self.provider == "cuda" else ()
        self._pad_to = sorted(pad_to)
        self.slots = 1  # concurrent runs the service makes on this model (set by load)
        self.intra_op_threads = 0

    @property
    def session(self) -> ort.InferenceSession:
        """The first device's first session (the one the provider is read from)."""
        return self.pool.engines[0].session

    @property
    def io_binding(self) -> bool:
        return self.pool.engines[0].path != "plain"

    def set_pad_to(self, sizes: Sequence[int]) -> None:
        """New warm-up sizes (a lowered max batch); padding applies only where it did."""
        if self._pad_to:
            self._pad_to = sorted(sizes)

    def _padded(self, batch: int) -> int | None:
        """The size a run of `batch` rows is padded to; None where runs are not padded."""
        if not self._pad_to:
            return None
        return next((size for size in self._pad_to if size >= batch), batch)

    def session_for(self, size: int) -> ort.InferenceSession:
        """The first device's session that runs batches of `size` rows (after padding)."""
        return self.pool.engines[0].session_for(size if self._pad_to else None)

    def run(
        self,
        z: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64] | None,
        stop: RunStop | None = None,
    ) -> Images:
        """One onnxruntime run: z (B, latent) [+ labels (B,)] -> images (B, C, H, W); raises
        if `stop` is stopped before the run ends."""
        if len(self.pool.engines) == 1:  # the CPU, or one GPU: no choice to make or count
            return self._run_on(self.pool.engines[0], z, labels, stop)
        with self.pool.take() as engine:
            return self._run_on(engine, z, labels, stop)

    def _run_on(
        self,
        engine: Engine,
        z: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64] | None,
        stop: RunStop | None = None,
    ) -> Images:
        batch = z.shape[0]
        size = self._padded(batch)
        if size is not None and size != batch:  # pad rows are zeros, dropped after the run
            z = np.concatenate([z, np.zeros((size - batch, z.shape[1]), np.float32)])
            if labels is not None:
                labels = np.concatenate([labels, np.zeros(size - batch, np.int64)])
        feeds: dict[str, npt.NDArray[Any]] = {"z": np.ascontiguousarray(z)}
        if self.spec.conditional:
            assert labels is not None
            feeds["label"] = np.ascontiguousarray(labels)
        out = engine.run(feeds, self.spec.image_shape, size, stop.options if stop else None)
        images = np.asarray(out, dtype=np.float32)[:batch]
        if images.shape != (batch, *self.spec.image_shape):
            raise RuntimeError(f"{self.spec.name}: run returned shape {images.shape}")
        return images

    def warm_up(self, sizes: Sequence[int], concurrent: int = 1) -> float:
        """Run once at each batch size, then `concurrent` runs at the largest at once; return
        images/s measured at the largest alone.

        Every device runs every size; with CUDA graphs each runs it until its graph is
        captured and replayed once, so no capture is left for a served run. The concurrent
        runs grow onnxruntime's memory arena to what that many run slots use together, at
        start-up rather than at the first burst (on the CPU the arena never shrinks: a burst
        left the process 69 MB larger when only one run had warmed it).
        """
        rate = 0.0
        for size in sorted(sizes):
            for index, engine in enumerate(self.pool.engines):
                # untimed: the first device's first run at a size is the timed one below
                runs = _CAPTURED_RUNS if self.cuda_graphs else 1 if index else 0
                for _ in range(runs):
                    self._warm_run(size, engine)
            started = time.perf_counter()
            self._warm_run(size)  # an idle pool takes the first device
            rate = size / max(time.perf_counter() - started, 1e-9)
        if concurrent > 1 and sizes:
            together = threading.Barrier(concurrent, timeout=60)  # start the runs at once

            def run_together() -> None:
                together.wait()
                self._warm_run(max(sizes))

            with ThreadPoolExecutor(concurrent, thread_name_prefix="warm-up") as pool:
                for done in [pool.submit(run_together) for _ in range(concurrent)]:
                    done.result()
        return rate

    def largest_batch_within(self, sizes: Sequence[int], limit_s: float) -> int:
        """The largest of `sizes` whose run takes at most `limit_s` (the smallest if none does).

        Sizes are tried smallest first, each run once unmeasured (the first run at a shape sets
        up its memory, and its kernels on CUDA) and once timed; the first size over the limit
        ends the search, so a slow model never runs the sizes it will not serve.
        """
        ordered = sorted(sizes)
        fitted = ordered[0]
        for size in ordered:
            self._warm_run(size)
            started = time.perf_counter()
            self._warm_run(size)
            if time.perf_counter() - started > limit_s:
                break
            fitted = size
        return fitted

    def _warm_run(self, size: int, engine: Engine | None = None) -> None:
        z = np.zeros((size, self.spec.latent_dim), np.float32)
        labels = np.zeros(size, np.int64) if self.spec.conditional else None
        try:
            if engine is None:
                self.run(z, labels)
            else:
                self._run_on(engine, z, labels)
        except Exception as exc:  # one line naming the file, for the log and /readyz
            reason = runtime_error_line(exc)
            raise RuntimeFailed(
                f"{self.spec.path}: warm-up at batch {size} failed: {reason}"
            ) from exc


def usable_cpus() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup v2 CPU quota
    (a container's or pod's CPU limit)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


def run_layout(
    on_gpu: bool, run_slots: int, intra_op_threads: int, cores: int | None = None
) -> tuple[int, int]:
    """(run slots, intra-op threads per run): 0 means auto; `cores`: the usable cores
    (default: read from this process's affinity and CPU quota).

    On the CPU, one slot per core with one intra-op thread each: several small runs in
    parallel scale across cores where one run on several threads does not. On a GPU, one slot
    (the device serialises runs; batching does the work) with onnxruntime's default threads.
    """
    if on_gpu:
        return run_slots or 1, intra_op_threads
    cores = cores or usable_cpus()
    slots = run_slots or cores
    return slots, intra_op_threads or max(1, cores // slots)


def load(
    path: Path,
    providers: Sequence[str],
    intra_op_threads: int,
    pad_to: Sequence[int] = (),
    io_binding: bool | None = None,
    run_slots: int = 0,
    spec: GeneratorSpec | None = None,
    *,
    cuda_graphs: bool = False,
    devices: Sequence[int] | None = None,
) -> Generator:
    """Open onnxruntime sessions on `path`, checked against the contract — by `spec`, its
    reading at start-up, when given (the file must not have changed since).

    On CUDA: one engine per device of `devices` (default: every GPU the driver reports),
    with CUDA graphs where `cuda_graphs`; on the CPU one engine, and neither applies.
    """
    data = path.read_bytes()
    if spec is None:
        spec = inspect(path, data)
    elif hashlib.sha256(data).hexdigest() != spec.sha256:
        raise ModelError(f"{path}: changed since start-up; restart gan-serve to serve it")
    # Providers that cannot work here (no CUDA provider in this build, no GPU, no CUDA
    # libraries) are left out rather than letting onnxruntime fail loudly; that counts as a
    # fallback, which choose_providers has already explained in one warning.
    choice = choose_providers(providers, ort.get_available_providers())
    on_gpu = choice.names[0] == PROVIDERS["cuda"]
    device_ids = choose_devices(devices, cuda_device_count()) if on_gpu else [0]
    graphs = cuda_graphs and on_gpu
    slots, threads = run_layout(on_gpu, run_slots, intra_op_threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    # Parallelism comes from concurrent runs (slots) on this one session, each on its
    # calling thread, and from intra-op threads within a run; none from inter-op.
    options.inter_op_num_threads = 1

    def opener(device_id: int) -> Callable[[], ort.InferenceSession]:
        cuda = {"device_id": str(device_id)} | ({"enable_cuda_graph": "1"} if graphs else {})
        names = with_cuda_options(choice.names, cuda) if on_gpu else list(choice.names)

        def open_session() -> ort.InferenceSession:
            try:
                return ort.InferenceSession(data, options, providers=names)
            except Exception as exc:  # onnxruntime raises its own exception types
                first = runtime_error_line(exc)  # one line, no build paths
                raise RuntimeFailed(f"{path}: onnxruntime cannot load it: {first}") from exc

        return open_session

    first = opener(device_ids[0])()
    on_cuda = first.get_providers()[0] == PROVIDERS["cuda"]
    if not on_cuda:  # onnxruntime fell back to the CPU: one engine, no graphs
        device_ids, graphs = device_ids[:1], False
    pad = pad_to if on_cuda else ()
    bound = on_cuda if io_binding is None else io_binding
    run_path: RunPath = "fixed" if graphs else "bound" if bound else "plain"
    engines: dict[int, Engine] = {}
    for device_id in device_ids:
        open_session = opener(device_id)  # which holds the file's bytes
        engines[device_id] = Engine(
            first if device_id == device_ids[0] else open_session(),
            path=run_path,
            device="cuda" if on_cuda else "cpu",
            device_id=device_id if on_cuda else 0,
            open_session=open_session if pad else None,
            one_thread=graphs,
        )
    generator = Generator(spec, engines, [choice.preferred], pad_to=pad, cuda_graphs=graphs)
    generator.slots, generator.intra_op_threads = slots * len(engines), threads
    if generator.fallback and choice.reason is None:  # onnxruntime itself fell back
        log.warning(
            "model %s: asked for providers %s but onnxruntime runs it on %s (fallback)",
            spec.name,
            ",".join(providers),
            generator.provider,
        )
    return generator
