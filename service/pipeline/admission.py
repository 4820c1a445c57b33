"""Admission: take a request only if what it will hold fits, before any work that grows with n.

A request is admitted or refused in constant time on the event loop, before its inputs are
built. Once admitted it holds a `Permit` until its last byte is sent (the request lifecycle
middleware releases it): its images count against the model's image bound (`GAN_MAX_QUEUE`)
and its bytes against the process's memory budget (`GAN_MEMORY_BUDGET_MB`) while they are
being built, queued, run, encoded and sent.

Refusals: a request that can never fit is `TooLarge` (413, naming n and the limit); one that
does not fit now is `QueueFull` (503) — at once, or after waiting up to
`GAN_ADMISSION_WAIT_MS` for room given back meanwhile (by clients that just left, say) — with
a Retry-After from the measured drain rate: the time to work off what is admitted ahead of it
plus itself. Requests waiting for room are admitted in arrival order, per model: a newcomer
waits behind them even where it would fit, so a large request is never starved by a stream
of small ones.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from service.errors import QueueFull, TooLarge
from service.metrics import Metrics
from service.models.memory import MB

# The drain rate is measured over this much recent history of completed runs, once the
# model has been busy for at least _MIN_SPAN_S.
_RATE_WINDOW_S = 2.0
_MIN_SPAN_S = 0.5
# Before a refusal, the event loop gets this many turns to run what is already due: clients
# whose hang-up it has read but whose room is given back only a few callbacks later.
_SETTLE_TURNS = 4


class MemoryBudget:
    """Bytes the whole process may hold for requests, after every model's run reserve."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.reserved = 0  # working memory of runs, set aside at start-up
        self.held = 0  # bytes held by admitted requests
        self._waiters: list[asyncio.Future[None]] = []  # requests waiting for room

    @property
    def for_requests(self) -> int:
        return max(self.total - self.reserved, 0)

    def reserve(self, nbytes: int) -> None:
        self.reserved += nbytes

    async def released(self, timeout_s: float) -> None:
        """Return when some admitted request gives back what it held, or after timeout_s."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=timeout_s)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def wake(self) -> None:
        """Some room was given back: every waiting request looks again."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class DrainRate:
    """Images per second a model works off.

    Under sustained load: completions per second over the last few seconds of busy time (what
    the slots really deliver, encoding included). Until there are enough: the latest runs' own
    speed times the slots; before any run: the warm-up's estimate."""

    def __init__(self, initial_images_per_s: float, slots: int) -> None:
        self._initial = max(initial_images_per_s, 1.0)
        self._slots = slots
        self._per_run: float | None = None  # images/s of one slot, moving average over runs
        self._done: deque[tuple[float, int]] = deque()  # (finished at, images)
        self._busy_since: float | None = None

    def busy(self, now: float) -> None:
        if self._busy_since is None:
            self._busy_since = now

    def idle(self) -> None:
        self._busy_since = None

    def record(self, now: float, images: int, run_s: float) -> None:
        speed = images / max(run_s, 1e-6)
        self._per_run = speed if self._per_run is None else 0.5 * self._per_run + 0.5 * speed
        self._done.append((now, images))
        while self._done and self._done[0][0] < now - _RATE_WINDOW_S:
            self._done.popleft()

    def run_s(self, images: int) -> float:
        """How long one slot's run of `images` takes: the latest runs' speed (before any, the
        warm-up's, measured at the largest batch)."""
        return images / (self._per_run or self._initial)

    def images_per_s(self, now: float) -> float:
        if self._busy_since is not None and len(self._done) >= 2:
            start = max(self._busy_since, now - _RATE_WINDOW_S)
            images = sum(count for at, count in self._done if at > start)
            if now - start >= _MIN_SPAN_S and images:
                return images / (now - start)
        if self._per_run is not None:
            return self._per_run * self._slots
        return self._initial


@dataclass(eq=False)
class Permit:
    """What one admitted request holds; `release` is idempotent."""

    admission: Admission
    images: int
    nbytes: int
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.give_back(self)


class Admission:
    """The admission bound of one model: images per model, bytes per process."""

    def __init__(
        self,
        model: str,
        *,
        max_images: int,
        held_bytes_per_image: int,
        budget: MemoryBudget,
        rate: DrainRate,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self.max_images = max_images
        self.per_image = held_bytes_per_image
        self.budget = budget
        self.rate = rate
        self.metrics = metrics
        self.images = 0  # images held by admitted requests of this model
        series = metrics.for_model(model)
        self._admitted = series.admitted_images
        self._waiting = series.admission_waiting
        self._line: deque[object] = deque()  # waiting requests, oldest first

    @property
    def largest_request(self) -> int:
        """The most images one request can ever hold."""
        return min(self.max_images, self.budget.for_requests // max(self.per_image, 1))

    async def admit(self, n: int, wait_s: float = 0.0) -> Permit:
        """Admit n images, waiting up to wait_s for room; else QueueFull (or TooLarge)."""
        need = n * self.per_image
        if n > self.largest_request:
            raise TooLarge(
                f"n={n} images of model {self.model} need {need / MB:.1f} MB; at most "
                f"{self.largest_request} fit (GAN_MAX_QUEUE={self.max_images}, "
                f"GAN_MEMORY_BUDGET_MB={self.budget.total / MB:.0f})",
                field="n",
            )
        if self._line or not self._fits(n, need):
            await self._wait_in_line(n, need, time.monotonic() + wait_s)
        self.images += n
        self.budget.held += need
        self._admitted.set(self.images)
        return Permit(self, n, need)

    async def _wait_in_line(self, n: int, need: int, give_up: float) -> None:
        """Wait behind the requests that came first until this one fits; else QueueFull."""
        place = object()
        self._line.append(place)
        self._waiting.set(len(self._line))
        try:
            settle = _SETTLE_TURNS
            while self._line[0] is not place or not self._fits(n, need):
                left = give_up - time.monotonic()
                if left <= 0 and settle:
                    settle -= 1
                    await asyncio.sleep(0)
                    continue
                if left <= 0:
                    self.metrics.rejected.labels(reason="overload").inc()
                    retry = self.retry_after_s(n)
                    raise QueueFull(
                        f"model {self.model}: {self.images} images admitted ahead "
                        f"(at most {self.max_images}); retry in about {retry:.1f} s",
                        retry_after_s=retry,
                    )
                await self.budget.released(left)
        finally:
            self._line.remove(place)
            self._waiting.set(len(self._line))
            self.budget.wake()  # the next in line looks again

    def _fits(self, n: int, need: int) -> bool:
        return (
            self.images + n <= self.max_images
            and self.budget.held + need <= self.budget.for_requests
        )

    def retry_after_s(self, n: int) -> float:
        """Seconds to work off every admitted image of this model, plus n more."""
        return (self.images + n) / self.rate.images_per_s(time.monotonic())

    def give_back(self, permit: Permit) -> None:
        self.images -= permit.images
        self.budget.held -= permit.nbytes
        self._admitted.set(self.images)
        self.budget.wake()
