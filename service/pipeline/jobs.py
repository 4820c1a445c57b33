"""What flows through a model's pipeline: a request's `Job`, its `Ticket` once admitted,
the `Run`s that hold its rows, the `Schedule` the pipeline keeps, and the `Answer` it gives.

The scheduler (`service.pipeline.scheduler`) moves these between the event loop and the run
slots' threads; fields say which side writes them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.errors import ServiceError
from service.models.generator import RunStop
from service.pipeline.admission import Permit

Latents = npt.NDArray[np.float32]  # (rows, latent_dim)
Labels = npt.NDArray[np.int64]  # (rows,)
Pixels = npt.NDArray[np.uint8]  # (n, C, H, W)
Images = npt.NDArray[np.float32]  # (n, C, H, W): the generator's output as it is


@dataclass(frozen=True)
class Job:
    """What one request asks a model for; both callables run in a slot's thread."""

    n: int
    rows: Callable[[int, int], tuple[Latents, Labels | None]]  # inputs of rows [start, stop)
    encode: Callable[[Pixels], bytes]  # the response body, once every row has run
    format: str = "json"  # the label of gan_encode_duration_seconds
    # Seeded rows (/samples): the run builds all its requests' inputs in one pass instead.
    seeded: tuple[int, int | None] | None = None  # (request seed, fixed label or None)
    # The raw generator output (the v2 `image` tensor): the ticket keeps float32 images and
    # this encodes them instead of `encode` (never called then): no uint8 conversion.
    encode_images: Callable[[Images], bytes] | None = None


@dataclass(eq=False)
class Ticket:
    """One admitted job on its way through the queue and the slots."""

    job: Job
    future: asyncio.Future[bytes]
    out: Pixels | Images  # (n, C, H, W): uint8 pixels, or float32 for `encode_images`
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


@dataclass(frozen=True)
class Schedule:
    """How one model's pipeline runs its work: the settings, and the sizes fitted at load."""

    slots: int  # runs at once
    max_batch: int  # images in one run
    max_delay_s: float  # GAN_MAX_DELAY_MS: how long a run that is not full may wait
    timeout_s: float  # GAN_REQUEST_TIMEOUT_S, from a request's arrival
    grace_s: float  # GAN_DEADLINE_GRACE_S: rows already running may finish past it
    admission_wait_s: float = 0.0  # GAN_ADMISSION_WAIT_MS


@dataclass(frozen=True)
class Answer:
    """An admitted request's response body, and the permit it holds until its last byte is
    sent: whoever sends the body releases it."""

    body: bytes
    permit: Permit
