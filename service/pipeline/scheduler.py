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
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    InferenceFailed,
    ServiceError,
)
from service.metrics import Metrics
from service.models.generator import Generator
from service.pipeline import slots
from service.pipeline.admission import Admission, DrainRate
from service.pipeline.jobs import (
    Answer,
    Job,
    Run,
    RunOutcome,
    Schedule,
    Slice,
    Ticket,
)

log = logging.getLogger("service.pipeline.scheduler")

# A request's rows are split over free slots only where its run takes at least this long:
# below, the hops between threads cost more than the run saves (docs/benchmarks.md,
# "Splitting a cheap request").
SPLIT_MIN_RUN_S = 0.001


class Pipeline:
    """Admission, queue and run slots of one model."""

    def __init__(
        self,
        generator: Generator,
        admission: Admission,
        rate: DrainRate,
        metrics: Metrics,
        schedule: Schedule,
    ) -> None:
        self.generator = generator
        self.model = generator.spec.name
        self.admission = admission
        self.rate = rate
        self.metrics = metrics
        self.series = metrics.for_model(self.model)
        self.schedule = schedule
        self._queue: deque[Ticket] = deque()
        self._depth = 0  # images queued, not yet taken into a run
        self._free = schedule.slots
        self._delayed: asyncio.TimerHandle | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(
            schedule.slots,
            thread_name_prefix=f"run-{self.model}",
            initializer=slots.behind_the_event_loop,
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
        permit = await self.admission.admit(job.n, self.schedule.admission_wait_s)
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
                    waiting, timeout=self.schedule.grace_s, return_when="FIRST_COMPLETED"
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
        dtype = np.uint8 if job.encode_images is None else np.float32
        out = np.empty((job.n, *self.generator.spec.image_shape), dtype)
        ticket = Ticket(job, loop.create_future(), out, arrived + self.schedule.timeout_s, now)
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
        return self._depth == 0 and self._free == self.schedule.slots

    def _dispatch(self) -> None:
        """Start runs on free slots while there is queued work."""
        while self._free and self._queue and not self._closed:
            if self._should_wait():
                return
            batch = self._take()
            if not batch:
                continue
            self._free -= 1
            self.series.runs_in_progress.set(self.schedule.slots - self._free)
            self.rate.busy(time.monotonic())
            run = Run(batch)
            for ticket, _, _ in batch:
                ticket.runs.append(run)
            self._executor.submit(self._work, run)

    def _should_wait(self) -> bool:
        """With GAN_MAX_DELAY_MS > 0, hold a run that is not full until the oldest has waited."""
        if self.schedule.max_delay_s <= 0 or self._depth >= self.schedule.max_batch:
            return False
        left = self._queue[0].admitted_at + self.schedule.max_delay_s - time.monotonic()
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
        among the slots free now; a busy slot takes its share when it is free again), except
        that a request whose run is cheap is not cut into shares."""
        share = math.ceil(self._depth / max(self._free, 1))
        head = self._queue[0]
        whole = head.job.n - head.next_row
        if share < whole and self.rate.run_s(whole) < SPLIT_MIN_RUN_S:
            share = whole  # one cheap request: a second thread's hops cost more than its run
        room = min(self.schedule.max_batch, max(share, 1))
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
        self.series.runs_in_progress.set(self.schedule.slots - self._free)
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
            slots.generate_batch(self.generator, run, outcome)
        except Exception as exc:
            outcome.error = exc
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._finished, run, outcome)

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
