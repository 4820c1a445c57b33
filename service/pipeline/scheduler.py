"""The request pipeline of one model: admit → queue → run (inputs, onnxruntime, pixels,
encoding) → answer, with deadlines and cancellation at every stage.

A request becomes a `Job` (how many images, how to build the inputs of rows [a, b), how to
encode the finished pixels) and, once admitted (`service.pipeline.admission`), a ticket in the
model's queue. Run slots take work from the head of the queue:

- a slot that is free starts a run at once — no idle wait for more work (unless
  `GAN_MAX_DELAY_MS` asks for one); work accumulates only while every slot is busy, so a run
  takes whatever arrived meanwhile: batching comes from load, not from a timer;
- a run takes at most `max_batch` images and at most its share of what is queued
  (queued / free slots), so slots free at once split the work instead of one taking all of
  it, and a large request is split across them;
- the slot's thread builds the inputs, runs onnxruntime (which releases the GIL), converts to
  uint8 and, for every request whose last rows it ran, encodes the response body: one thread
  hop per run, not several per request.

On a CPU the slots are one per core, each running onnxruntime on one intra-op thread: on small
generators parallel runs scale across cores far better than one run on several threads. On a
GPU one slot (runs are serialised on the device anyway) and batching does the work.

Every admitted request is answered by its deadline (plus a grace for rows already running):
rows still queued at the deadline are dropped with `DeadlineExceeded` (504); a client that
disconnects drops its queued rows, and work on rows already taken is skipped where it has
not started (the encoding). A run in onnxruntime whose every request has been dropped is
stopped between two nodes (`RunStop`), so its slot is free for live work. A failed run fails
each of its requests once (`InferenceFailed`) and the slot goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.contract import to_uint8
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    InferenceFailed,
    ServiceError,
)
from service.metrics import Metrics
from service.models.generator import Generator, RunStop
from service.pipeline import seeding
from service.pipeline.admission import Admission, DrainRate, Permit

log = logging.getLogger("service.pipeline.scheduler")

Latents = npt.NDArray[np.float32]  # (rows, latent_dim)
Labels = npt.NDArray[np.int64]  # (rows,)
Pixels = npt.NDArray[np.uint8]  # (n, C, H, W)


@dataclass(frozen=True)
class Job:
    """What one request asks a model for; both callables run in a slot's thread."""

    n: int
    rows: Callable[[int, int], tuple[Latents, Labels | None]]  # inputs of rows [start, stop)
    encode: Callable[[Pixels], bytes]  # the response body, once every row has run
    format: str = "json"  # the label of gan_encode_duration_seconds
    # Seeded rows (/samples): the run builds all its requests' inputs in one pass instead.
    seeded: tuple[int, int | None] | None = None  # (request seed, fixed label or None)


@dataclass(eq=False)
class Ticket:
    """One admitted job on its way through the queue and the slots."""

    job: Job
    future: asyncio.Future[bytes]
    pixels: Pixels
    deadline: float  # time.monotonic() by which it must be answered
    admitted_at: float
    next_row: int = 0  # rows before this one have been taken into runs (event loop only)
    error: ServiceError | None = None  # set once dropped; slots skip its remaining work
    rows_done: int = 0  # rows whose pixels are written (slots, under `lock`)
    encode_s: float = 0.0  # set before `body`: whoever sees the body sees its encode time
    body: bytes | None = None  # the encoded response, set by the slot that ran its last rows
    encode_error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: list[Run] = field(default_factory=list)  # runs holding its rows (event loop only)

    @property
    def queued(self) -> int:
        return self.job.n - self.next_row


Slice = tuple[Ticket, int, int]  # rows [start, stop) of a ticket


@dataclass(eq=False)
class Run:
    """One onnxruntime run in a slot: its slices, and how to stop it once nobody waits."""

    batch: list[Slice]
    stop: RunStop = field(default_factory=RunStop)

    def stop_if_unwanted(self) -> None:
        """Stop the run when every request it works for has been dropped."""
        if all(ticket.error is not None for ticket, _, _ in self.batch):
            self.stop.stop()


@dataclass
class RunOutcome:
    images: int = 0
    run_s: float = 0.0
    error: BaseException | None = None


# How many nice steps below the event loop's the run slots' CPU priority is (Linux).
SLOT_NICENESS = 10


def _behind_the_event_loop() -> None:
    """Lower this run slot thread's CPU priority, so that when cores are short the event loop
    runs first: admission, refusals, /healthz and answers do not wait behind model runs
    (measured under 4× overload: 503 p99 and /healthz p99 about 2× lower, docs/benchmarks.md).
    Linux gives each thread its own nice value; elsewhere, or where refused, nothing changes."""
    thread = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(now + SLOT_NICENESS, 19))


@dataclass(frozen=True)
class Answer:
    """An admitted request's response body, and the permit it holds until its last byte is
    sent: whoever sends the body releases it."""

    body: bytes
    permit: Permit


class Pipeline:
    """Admission, queue and run slots of one model."""

    def __init__(
        self,
        generator: Generator,
        admission: Admission,
        rate: DrainRate,
        metrics: Metrics,
        *,
        slots: int,
        max_batch: int,
        max_delay_s: float,
        timeout_s: float,
        grace_s: float,
        admission_wait_s: float = 0.0,
    ) -> None:
        self.generator = generator
        self.model = generator.spec.name
        self.admission = admission
        self.rate = rate
        self.metrics = metrics
        self.series = metrics.for_model(self.model)
        self.slots = slots
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.admission_wait_s = admission_wait_s
        self._queue: deque[Ticket] = deque()
        self._depth = 0  # images queued, not yet taken into a run
        self._free = slots
        self._delayed: asyncio.TimerHandle | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(
            slots, thread_name_prefix=f"run-{self.model}", initializer=_behind_the_event_loop
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the request side --------------------------------------------------------------------

    async def answer(
        self,
        job: Job,
        gone: Callable[[], Awaitable[Any]] | None = None,
        arrived: float | None = None,
    ) -> Answer:
        """Admit `job` (or raise QueueFull / TooLarge), then generate it. Once admitted, `gone()`
        completes when nobody waits any more (a disconnect); the deadline runs from `arrived`
        (time.monotonic(), default now), so the admission wait counts against it."""
        arrived = time.monotonic() if arrived is None else arrived
        permit = await self.admission.admit(job.n, self.admission_wait_s)
        try:
            body = await self.generate(job, None if gone is None else gone(), arrived)
        except BaseException:
            permit.release()
            raise
        return Answer(body, permit)

    async def generate(
        self, job: Job, gone: Awaitable[Any] | None = None, arrived: float | None = None
    ) -> bytes:
        """Queue an admitted job and wait for its body, its deadline or `gone` (a disconnect)."""
        ticket = self._enqueue(job, time.monotonic() if arrived is None else arrived)
        watcher = asyncio.ensure_future(gone) if gone is not None else None
        waiting: set[asyncio.Future[Any]] = {ticket.future}
        if watcher is not None:
            waiting.add(watcher)
        try:
            timeout = max(ticket.deadline - time.monotonic(), 0.0)
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when="FIRST_COMPLETED")
            if not done and not ticket.queued:
                # Every row is running or encoding: that ends within a run; give it the grace.
                done, _ = await asyncio.wait(
                    waiting, timeout=self.grace_s, return_when="FIRST_COMPLETED"
                )
            if not done:
                error = DeadlineExceeded(f"deadline of a {self.model} request passed")
                self.drop(ticket, error)
                raise error
            if ticket.future in done:
                if ticket.future.cancelled() and ticket.error is not None:
                    # Dropped by the scheduler: its deadline passed while it was still queued
                    # and a run came for it before this waiter's own timer fired.
                    raise ticket.error
                return ticket.future.result()
            self.drop(ticket, Cancelled("client disconnected"))
            raise Cancelled("client disconnected")
        except asyncio.CancelledError:
            self.drop(ticket, Cancelled("request cancelled"))
            raise
        finally:
            if watcher is not None:
                watcher.cancel()

    def _enqueue(self, job: Job, arrived: float) -> Ticket:
        if self._closed:
            raise Draining("service shut down before this request ran")
        loop = asyncio.get_running_loop()
        self._loop = loop
        now = time.monotonic()
        pixels = np.empty((job.n, *self.generator.spec.image_shape), np.uint8)
        ticket = Ticket(job, loop.create_future(), pixels, arrived + self.timeout_s, now)
        self._queue.append(ticket)
        self._set_depth(self._depth + job.n)
        self._dispatch()
        return ticket

    def drop(self, ticket: Ticket, error: ServiceError) -> None:
        """Take the ticket's queued rows out and stop its remaining work; nobody waits for it."""
        if ticket.error is not None or ticket.future.done():
            return
        if isinstance(error, DeadlineExceeded):
            self.metrics.rejected.labels(reason="timeout").inc()
        elif isinstance(error, Cancelled):
            self.metrics.rejected.labels(reason="cancelled").inc()
        ticket.error = error
        self._unqueue(ticket)
        for run in ticket.runs:
            run.stop_if_unwanted()
        ticket.future.cancel()  # the waiter raises `error` itself

    # -- scheduling (event loop) -------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self._depth == 0 and self._free == self.slots

    def _dispatch(self) -> None:
        """Start runs on free slots while there is queued work."""
        while self._free and self._queue and not self._closed:
            if self._should_wait():
                return
            batch = self._take()
            if not batch:
                continue
            self._free -= 1
            self.series.runs_in_progress.set(self.slots - self._free)
            self.rate.busy(time.monotonic())
            run = Run(batch)
            for ticket, _, _ in batch:
                ticket.runs.append(run)
            self._executor.submit(self._work, run)

    def _should_wait(self) -> bool:
        """With GAN_MAX_DELAY_MS > 0, hold a run that is not full until the oldest has waited."""
        if self.max_delay_s <= 0 or self._depth >= self.max_batch:
            return False
        left = self._queue[0].admitted_at + self.max_delay_s - time.monotonic()
        if left <= 0:
            return False
        if self._delayed is None:
            self._delayed = asyncio.get_running_loop().call_later(left, self._wake)
        return True

    def _wake(self) -> None:
        self._delayed = None
        self._dispatch()

    def _take(self) -> list[Slice]:
        """The next run: at most max_batch images and at most a fair share of the queue (split
        among the slots free now; a busy slot takes its share when it is free again)."""
        share = math.ceil(self._depth / max(self._free, 1))
        room = min(self.max_batch, max(share, 1))
        batch: list[Slice] = []
        now = time.monotonic()
        while self._queue and room:
            ticket = self._queue[0]
            if ticket.deadline <= now:
                self.drop(ticket, DeadlineExceeded(f"deadline of a {self.model} request passed"))
                continue
            start = ticket.next_row
            stop = min(ticket.job.n, start + room)
            batch.append((ticket, start, stop))
            ticket.next_row = stop
            room -= stop - start
            if start == 0:  # its first rows leave the queue
                self.series.queue_wait.observe(now - ticket.admitted_at)
            if stop == ticket.job.n:
                self._queue.popleft()
        self._set_depth(self._depth - sum(b - a for _, a, b in batch))
        return batch

    def _finished(self, run: Run, outcome: RunOutcome) -> None:
        """Back on the event loop after a run: answer whoever is complete, start more work."""
        batch = run.batch
        for ticket, _, _ in batch:
            ticket.runs.remove(run)
        self._free += 1
        self.series.runs_in_progress.set(self.slots - self._free)
        now = time.monotonic()
        if outcome.error is None and outcome.images:  # no run when all its requests left
            self.series.inference_duration.observe(outcome.run_s)
            self.series.batch_size.observe(outcome.images)
            self.series.images_generated.inc(outcome.images)
            self.rate.record(now, outcome.images, outcome.run_s)
        elif run.stop.stopped or outcome.error is None:  # stopped, or nothing live to run
            log.debug(
                "model %s: run of %d slices stopped: its requests are gone", self.model, len(batch)
            )
        else:
            log.error(
                "model %s: run of %d slices failed: %s: %s",
                self.model,
                len(batch),
                type(outcome.error).__name__,
                outcome.error,
            )
        for ticket, _, _ in batch:
            if ticket.future.done():
                continue
            if outcome.error is not None:
                self._fail(ticket, InferenceFailed(f"model {self.model}: inference failed"))
            elif ticket.encode_error is not None:
                self._fail(ticket, InferenceFailed(f"model {self.model}: encoding failed"))
            elif ticket.body is not None:
                self.metrics.encode_series(ticket.job.format).observe(ticket.encode_s)
                ticket.future.set_result(ticket.body)
        self._dispatch()
        if self.idle:
            self.rate.idle()

    def _fail(self, ticket: Ticket, error: ServiceError) -> None:
        """Fail a ticket whose waiter still waits: its queued rows go, runs that work only for
        it stop, the waiter gets `error`."""
        self._unqueue(ticket)
        ticket.error = error
        for run in ticket.runs:
            run.stop_if_unwanted()
        ticket.future.set_exception(error)

    # -- the slot's thread -------------------------------------------------------------------

    def _work(self, run: Run) -> None:
        outcome = RunOutcome()
        try:
            self._run(run, outcome)
        except Exception as exc:
            outcome.error = exc
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._finished, run, outcome)

    def _run(self, run: Run, outcome: RunOutcome) -> None:
        live = [(t, a, b) for t, a, b in run.batch if t.error is None]
        if not live:
            return
        z, labels = self._inputs(live)
        started = time.perf_counter()
        images = self.generator.run(z, labels, run.stop)
        outcome.run_s = time.perf_counter() - started
        outcome.images = int(z.shape[0])
        pixels = to_uint8(images)
        offset = 0
        for ticket, a, b in live:
            ticket.pixels[a:b] = pixels[offset : offset + b - a]
            offset += b - a
            with ticket.lock:
                ticket.rows_done += b - a
                complete = ticket.rows_done == ticket.job.n
            if complete and ticket.error is None:
                encode_started = time.perf_counter()
                try:
                    ticket.body = ticket.job.encode(ticket.pixels)
                except Exception as exc:
                    log.error("model %s: encoding failed: %r", self.model, exc)
                    ticket.encode_error = exc
                ticket.encode_s = time.perf_counter() - encode_started

    def _inputs(self, live: list[Slice]) -> tuple[Latents, Labels | None]:
        """The run's z and labels: seeded requests' rows in one pass, others request by
        request."""
        spec = self.generator.spec
        seeded = [(t.job.seeded, a, b) for t, a, b in live]
        if all(job is not None for job, _, _ in seeded):
            parts = [seeding.SeededRows(job[0], a, b, job[1]) for job, a, b in seeded if job]
            inputs = seeding.batch_rows(parts, spec.latent_dim, spec.num_classes)
            return inputs.z, inputs.labels
        rows = [t.job.rows(a, b) for t, a, b in live]
        z = np.concatenate([r[0] for r in rows]) if len(rows) > 1 else rows[0][0]
        labels: Labels | None = None
        if spec.conditional:
            pieces = [r[1] for r in rows if r[1] is not None]
            labels = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        return z, labels

    # -- life cycle --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop taking work; requests still queued are answered `Draining`."""
        self._closed = True
        if self._delayed is not None:
            self._delayed.cancel()
        for ticket in list(self._queue):
            if not ticket.future.done():
                self._fail(ticket, Draining("service shut down before this request ran"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _unqueue(self, ticket: Ticket) -> None:
        """Take the ticket's rows that no run has taken out of the queue."""
        if ticket.queued:
            self._set_depth(self._depth - ticket.queued)
            ticket.next_row = ticket.job.n
            self._queue.remove(ticket)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        self.series.queue_depth.set(depth)
