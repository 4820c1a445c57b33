"""Dynamic batching: coalesce concurrent requests for one model into few onnxruntime runs.

A request becomes a `Ticket`: its inputs, an output buffer and an asyncio future. Tickets wait
in a queue bounded in images (`max_queue`). One loop per model takes images from the head of
the queue, up to `max_batch` of them, waiting at most `max_delay` after the oldest arrived;
a ticket larger than what is left of a run is split and its rest stays at the head. The run,
including stitching inputs together and copying rows back into each ticket's buffer, happens
in a one-thread executor, so the event loop keeps serving HTTP and the encoding of the last
batch (in the routes' executor) overlaps the next run.

Work whose deadline passes before it runs is dropped (`DeadlineExceeded`); a ticket whose
client went away leaves the queue (`cancel`); a run that raises fails every ticket in it with
`InferenceFailed` and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    InferenceFailed,
    QueueFull,
    ServiceError,
)
from service.generator import Generator, Images
from service.metrics import Metrics

log = logging.getLogger("service.batcher")


@dataclass(eq=False)
class Ticket:
    """One request's images on their way through the queue."""

    z: npt.NDArray[np.float32]  # (n, latent)
    labels: npt.NDArray[np.int64] | None  # (n,)
    images: Images  # (n, C, H, W), filled run by run
    future: asyncio.Future[Images]
    deadline: float  # time.monotonic() by which its images must have started
    enqueued_at: float = field(default_factory=time.monotonic)
    next_row: int = 0  # rows before this one have been taken into runs
    done_rows: int = 0
    in_flight: int = 0  # runs now holding rows of this ticket
    error: ServiceError | None = None  # set once the ticket is dropped

    @property
    def n(self) -> int:
        return int(self.z.shape[0])

    @property
    def queued(self) -> int:
        return 0 if self.error is not None else self.n - self.next_row


Slice = tuple[Ticket, int, int]  # rows [start, stop) of a ticket


class ModelBatcher:
    def __init__(
        self,
        generator: Generator,
        metrics: Metrics,
        *,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
        images_per_s: float,
    ) -> None:
        self.generator = generator
        self.model = generator.spec.name
        self.max_batch, self.max_delay_s, self.max_queue = max_batch, max_delay_s, max_queue
        self.metrics = metrics
        self._rate = max(images_per_s, 1e-3)  # images/s, a moving average over runs
        self._queue: deque[Ticket] = deque()
        self._depth = 0  # images queued, not yet running
        self._running = False
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{self.model}")
        self._task: asyncio.Task[None] | None = None

    # -- the request side --------------------------------------------------------------------

    def submit(
        self, z: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None, timeout_s: float
    ) -> Ticket:
        """Queue one request's images, or raise QueueFull if they do not fit."""
        n = int(z.shape[0])
        self.check_room(n)
        images = np.empty((n, *self.generator.spec.image_shape), np.float32)
        loop = asyncio.get_running_loop()
        ticket = Ticket(z, labels, images, loop.create_future(), time.monotonic() + timeout_s)
        self._queue.append(ticket)
        self._set_depth(self._depth + n)
        self._arrived.set()
        return ticket

    def check_room(self, n: int) -> None:
        """Raise QueueFull, with a Retry-After estimate, if n more images do not fit."""
        if self._depth + n > self.max_queue:
            self.metrics.rejected.labels(reason="overload").inc()
            retry = (self._depth + n) / self._rate  # time to work off the queue and these
            raise QueueFull(
                f"model {self.model}: queue full ({self._depth} of {self.max_queue} images "
                f"waiting); retry in about {retry:.1f} s",
                retry_after_s=retry,
            )

    async def wait(self, ticket: Ticket, gone: Awaitable[Any]) -> Images:
        """The ticket's images; `gone` completes when the client disconnects."""
        watcher = asyncio.ensure_future(gone)
        try:
            timeout = max(ticket.deadline - time.monotonic(), 0.0)
            done, _ = await asyncio.wait(
                {ticket.future, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                # Deadline. Rows still queued are dropped and the request fails; if every row
                # is already running, the work is not wasted: wait for it.
                if ticket.queued:
                    self.drop(ticket, DeadlineExceeded(f"deadline of {self.model} request passed"))
                done, _ = await asyncio.wait(
                    {ticket.future, watcher}, return_when=asyncio.FIRST_COMPLETED
                )
            if ticket.future in done:
                return ticket.future.result()
            self.drop(ticket, Cancelled("client disconnected"))
            raise Cancelled("client disconnected")
        except asyncio.CancelledError:
            self.drop(ticket, Cancelled("request cancelled"))
            raise
        finally:
            watcher.cancel()

    def drop(self, ticket: Ticket, error: ServiceError) -> None:
        """Take the ticket's queued rows out; answer `error` once no run holds any of its rows."""
        if ticket.future.done() or ticket.error is not None:
            return
        if isinstance(error, DeadlineExceeded):
            self.metrics.rejected.labels(reason="timeout").inc()
        elif isinstance(error, Cancelled):
            self.metrics.rejected.labels(reason="cancelled").inc()
        self._set_depth(self._depth - ticket.queued)
        ticket.error = error
        if ticket in self._queue:
            self._queue.remove(ticket)
        self._settle(ticket)

    def _settle(self, ticket: Ticket) -> None:
        if ticket.future.done() or ticket.in_flight:
            return
        if ticket.error is None:
            if ticket.done_rows == ticket.n:
                ticket.future.set_result(ticket.images)
        elif isinstance(ticket.error, Cancelled):
            ticket.future.cancel()  # nobody waits for it
        else:
            ticket.future.set_exception(ticket.error)

    # -- the run side ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self._depth == 0 and not self._running

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"batcher-{self.model}")

    async def stop(self) -> None:
        """Stop the loop; tickets still queued are answered `Draining`."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for ticket in list(self._queue):
            self.drop(ticket, Draining("service shut down before this request ran"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue:
                await self._gather_more()
                batch = self._take()
                if batch:
                    await self._run(batch)

    async def _gather_more(self) -> None:
        """Wait for a full batch, but no longer than max_delay after the oldest arrival."""
        while self._queue and self._depth < self.max_batch:
            left = self._queue[0].enqueued_at + self.max_delay_s - time.monotonic()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[Slice]:
        batch: list[Slice] = []
        room, now = self.max_batch, time.monotonic()
        while self._queue and room:
            ticket = self._queue[0]
            if ticket.deadline <= now:
                self.drop(ticket, DeadlineExceeded(f"deadline of {self.model} request passed"))
                continue
            start = ticket.next_row
            stop = min(ticket.n, start + room)
            batch.append((ticket, start, stop))
            ticket.next_row, ticket.in_flight = stop, ticket.in_flight + 1
            room -= stop - start
            self.metrics.queue_wait.labels(model=self.model).observe(now - ticket.enqueued_at)
            if stop == ticket.n:
                self._queue.popleft()
        self._set_depth(self._depth - (self.max_batch - room))
        return batch

    def _infer(self, batch: list[Slice]) -> float:
        """In the executor: stitch inputs, run, copy rows back; return the run's seconds."""
        z = np.concatenate([t.z[a:b] for t, a, b in batch])
        labels = None
        if self.generator.spec.conditional:
            labels = np.concatenate([t.labels[a:b] for t, a, b in batch if t.labels is not None])
        started = time.perf_counter()
        images = self.generator.run(z, labels)
        seconds = time.perf_counter() - started
        offset = 0
        for ticket, a, b in batch:
            ticket.images[a:b] = images[offset : offset + b - a]
            offset += b - a
        return seconds

    async def _run(self, batch: list[Slice]) -> None:
        size = sum(b - a for _, a, b in batch)
        self._running = True
        try:
            seconds = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._infer, batch
            )
        except Exception as exc:
            log.exception("model %s: run of %d images failed", self.model, size)
            failure = InferenceFailed(f"model {self.model}: inference failed: {type(exc).__name__}")
            for ticket, _, _ in batch:
                ticket.in_flight -= 1
                if ticket.error is None:
                    self.drop(ticket, failure)
                else:
                    self._settle(ticket)
            return
        finally:
            self._running = False
        self.metrics.inference_duration.labels(model=self.model).observe(seconds)
        self.metrics.batch_size.labels(model=self.model).observe(size)
        self.metrics.images_generated.labels(model=self.model).inc(size)
        self._rate = 0.8 * self._rate + 0.2 * size / max(seconds, 1e-9)
        for ticket, a, b in batch:
            ticket.in_flight -= 1
            if ticket.error is None:
                ticket.done_rows += b - a
            self._settle(ticket)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        self.metrics.queue_depth.labels(model=self.model).set(depth)
