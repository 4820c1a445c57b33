"""One device's onnxruntime sessions of one generator, and the ways a run reaches them.

    engine = Engine(session, path="fixed", device="cuda", device_id=1, open_session=opener)
    images = engine.run({"z": z, "label": labels}, size=8, options=None)   # (8, C, H, W)

Three run paths, each giving the same bytes as `session.run`:

- `plain`: `session.run`; the CPU's default (IO binding measured slower there: docs/service.md,
  "GPU run path").
- `bound`: IO binding per run, the output bound to a numpy array made for this run, so
  onnxruntime writes it there (on CUDA: copies it there from the device) and nothing copies
  it again.
- `fixed`: per padded size, input and output OrtValues allocated once on the device and bound
  once, as CUDA graphs need (a graph replays on the addresses it was captured with); a run
  copies its inputs in (`update_inplace`) and its output out into an array of its own, under
  the buffers' lock.

Where runs are padded (`size` given), each padded size runs on a session of its own, opened
on first use, so no session ever changes shape (docs/benchmarks.md). With `one_thread` every
run goes through the engine's own thread, as onnxruntime's CUDA graphs need.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

RunPath = Literal["plain", "bound", "fixed"]
Feeds = Mapping[str, npt.NDArray[Any]]
OUTPUT = "image"


class RunStop:
    """Stops one onnxruntime run from another thread: between two nodes, or two iterations of
    a Loop, the run raises instead of going on (its requests are gone)."""

    def __init__(self) -> None:
        self.options = ort.RunOptions()
        # A stopped run is no failure: keep onnxruntime's own error line out of the log.
        self.options.log_severity_level = 4

    def stop(self) -> None:
        self.options.terminate = True

    @property
    def stopped(self) -> bool:
        return bool(self.options.terminate)


class FixedBuffers:
    """One session's inputs and output at one shape: OrtValues on the device, bound once."""

    def __init__(
        self,
        session: ort.InferenceSession,
        feeds: Feeds,
        output_shape: Sequence[int],
        device: str,
        device_id: int,
    ) -> None:
        self.device = device
        self.binding = session.io_binding()
        self.inputs: dict[str, ort.OrtValue] = {}
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_shape_and_type(
                list(array.shape), array.dtype.type, device, device_id
            )
            self.binding.bind_ortvalue_input(name, value)
            self.inputs[name] = value
        self.output = ort.OrtValue.ortvalue_from_shape_and_type(
            list(output_shape), np.float32, device, device_id
        )
        self.binding.bind_ortvalue_output(OUTPUT, self.output)
        self.lock = threading.Lock()  # every run on this session shares these buffers

    def run(
        self, session: ort.InferenceSession, feeds: Feeds, options: ort.RunOptions | None
    ) -> npt.NDArray[np.float32]:
        # A replayed CUDA graph runs no node by node, so onnxruntime never sees a stop set
        # before it starts: look here (on the CPU onnxruntime would raise the same).
        if options is not None and options.terminate:
            raise RuntimeError("Exiting due to terminate flag being set to true.")
        with self.lock:
            for name, array in feeds.items():
                self.inputs[name].update_inplace(np.ascontiguousarray(array))
            session.run_with_iobinding(self.binding, options)
            out: npt.NDArray[np.float32] = self.output.numpy()
            # On the CPU numpy() is a view of the buffer the next run overwrites; from a
            # device it is already a copy of its own.
            return out.copy() if self.device == "cpu" else out


class Engine:
    """The sessions of one generator on one device, and the path its runs take."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        path: RunPath = "plain",
        device: str = "cpu",
        device_id: int = 0,
        open_session: Callable[[], ort.InferenceSession] | None = None,
        one_thread: bool = False,
    ) -> None:
        self.session = session
        self.path: RunPath = path
        self.device = device
        self.device_id = device_id
        self._open_session = open_session
        self._sessions: dict[int, ort.InferenceSession] = {}
        self._buffers: dict[int, FixedBuffers] = {}
        self._opening = threading.Lock()
        # CUDA graphs: onnxruntime keeps a session's captured graph per calling thread and
        # does not allow Run on it from several threads, so every run (and the capture in
        # the warm-up) happens on this engine's one thread.
        self._thread: ThreadPoolExecutor | None = None
        if one_thread:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"gan-{device}{device_id}")
            weakref.finalize(self, self._thread.shutdown, False)

    @property
    def one_thread(self) -> bool:
        return self._thread is not None

    def session_for(self, size: int | None) -> ort.InferenceSession:
        """The session that runs batches padded to `size` (None: runs are not padded)."""
        if size is None or self._open_session is None:
            return self.session
        if (session := self._sessions.get(size)) is None:
            with self._opening:  # run slots may ask at once; open each size's session once
                if (session := self._sessions.get(size)) is None:
                    session = self.session if not self._sessions else self._open_session()
                    self._sessions[size] = session
        return session

    def run(
        self,
        feeds: Feeds,
        image_shape: Sequence[int],
        size: int | None,
        options: ort.RunOptions | None = None,
    ) -> npt.NDArray[np.float32]:
        """images (B, *image_shape) for `feeds` of B rows, already padded to `size`."""
        if self._thread is None:
            return self._run(feeds, image_shape, size, options)
        return self._thread.submit(self._run, feeds, image_shape, size, options).result()

    def _run(
        self,
        feeds: Feeds,
        image_shape: Sequence[int],
        size: int | None,
        options: ort.RunOptions | None,
    ) -> npt.NDArray[np.float32]:
        session = self.session_for(size)
        rows = len(next(iter(feeds.values())))
        if self.path == "fixed":
            if size is None:
                raise ValueError("fixed buffers need padded runs: one shape per session")
            return self._fixed(size, session, feeds, (rows, *image_shape)).run(
                session, feeds, options
            )
        if self.path == "bound":
            return self._run_bound(session, feeds, (rows, *image_shape), options)
        out: npt.NDArray[np.float32] = session.run([OUTPUT], dict(feeds), options)[0]
        return out

    def _run_bound(
        self,
        session: ort.InferenceSession,
        feeds: Feeds,
        shape: tuple[int, ...],
        options: ort.RunOptions | None,
    ) -> npt.NDArray[np.float32]:
        binding = session.io_binding()
        for name, array in feeds.items():
            if self.device == "cpu":
                binding.bind_cpu_input(name, array)
            else:  # copied to the device ahead of the run
                value = ort.OrtValue.ortvalue_from_numpy(array, self.device, self.device_id)
                binding.bind_ortvalue_input(name, value)
        out = np.empty(shape, np.float32)  # this run's own: the response is built from it
        binding.bind_output(OUTPUT, "cpu", 0, np.float32, list(shape), out.ctypes.data)
        session.run_with_iobinding(binding, options)
        return out

    def _fixed(
        self,
        size: int,
        session: ort.InferenceSession,
        feeds: Feeds,
        output_shape: tuple[int, ...],
    ) -> FixedBuffers:
        if (buffers := self._buffers.get(size)) is None:
            with self._opening:
                if (buffers := self._buffers.get(size)) is None:
                    buffers = FixedBuffers(
                        session, feeds, output_shape, self.device, self.device_id
                    )
                    self._buffers[size] = buffers
        return buffers
