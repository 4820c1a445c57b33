"""One model's pipeline in-process, on a real event loop with a real onnxruntime session of a
tiny generator: orderings between the run slots' threads and the event loop that a server
cannot be made to show on demand, and the deadline's start."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest

from service.errors import DeadlineExceeded
from service.metrics import Metrics
from service.models import generator
from service.pipeline.admission import Admission, DrainRate, MemoryBudget
from service.pipeline.jobs import Job, Latents, Pixels, Schedule
from service.pipeline.scheduler import Pipeline
from tests.support import onnx_models as models

LATENT = 8  # onnx_models.mlp_generator's default latent size
WAIT_S = 30  # bound on every cross-thread wait: a hang fails instead of blocking the suite


def _pipeline(
    model: Path, *, slots: int, max_batch: int, timeout_s: float, admission_wait_s: float = 0.0
) -> Pipeline:
    gen = generator.load(model, ["cpu"], intra_op_threads=1, run_slots=slots)
    metrics = Metrics(latency_buckets=(0.1, 1.0), max_batch=max_batch)
    rate = DrainRate(100.0, slots)
    admission = Admission(
        gen.spec.name,
        max_images=8,
        held_bytes_per_image=1,
        budget=MemoryBudget(1 << 20),
        rate=rate,
        metrics=metrics,
    )
    schedule = Schedule(
        slots=slots,
        max_batch=max_batch,
        max_delay_s=0.0,
        timeout_s=timeout_s,
        grace_s=1.0,
        admission_wait_s=admission_wait_s,
    )
    return Pipeline(gen, admission, rate, metrics, schedule)


def _zeros(start: int, stop: int) -> tuple[Latents, None]:
    return np.zeros((stop - start, LATENT), np.float32), None


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return models.mlp_generator(tmp_path / "digits.onnx")


def test_a_sibling_runs_answer_records_the_encode_time_of_the_body_it_sends(
    model: Path,
) -> None:
    """Guards the order in which a slot's thread publishes an encoded response: its encode
    time before its body. A request split over two runs in two slots is answered by whichever
    run's `_finished` on the event loop first sees the body; that may be the sibling run
    (the one that did not encode), at any moment after the body appears. Were the body set
    first, the sibling could answer in between and record an encode time of 0.

    Made deterministic: the event loop is held while both runs work, and a line tracer on
    the encoding slot's frame stops that thread at the first line at which the body is
    visible, until the request has been answered; the only run left to answer it then is
    the sibling, which sees the ticket exactly as it is at that moment."""
    pipeline = _pipeline(model, slots=2, max_batch=1, timeout_s=WAIT_S)
    loop_held, body_visible, answered = threading.Event(), threading.Event(), threading.Event()
    encode_took: list[float] = []

    def rows(start: int, stop: int) -> tuple[Latents, None]:
        assert loop_held.wait(WAIT_S)  # neither run ends before the event loop is held
        return _zeros(start, stop)

    def stop_once_the_body_is_visible(frame: FrameType, event: str, arg: Any) -> Any:
        ticket = frame.f_locals.get("ticket")
        if event == "line" and ticket is not None and ticket.body is not None:
            body_visible.set()
            assert answered.wait(WAIT_S)
            sys.settrace(None)
            return None
        return stop_once_the_body_is_visible

    def encode(pixels: Pixels) -> bytes:
        started = time.perf_counter()
        # Trace the rest of the calling frame (the slot's generate_batch), line by line.
        sys._getframe(1).f_trace = stop_once_the_body_is_visible
        sys.settrace(lambda *_: None)  # tracing on in this thread; no other frame traced
        body = pixels.tobytes()
        encode_took.append(time.perf_counter() - started)
        return body

    async def scenario() -> bytes:
        waiting = asyncio.ensure_future(pipeline.generate(Job(2, rows, encode)))
        await asyncio.sleep(0)  # one turn: the request is queued and both runs dispatched
        loop_held.set()
        # Held here (a blocking wait on the loop's own thread), the loop cannot run either
        # run's `_finished` before the encoding thread has published the body.
        assert body_visible.wait(WAIT_S)
        try:
            return await asyncio.wait_for(waiting, WAIT_S)
        finally:
            answered.set()
            await pipeline.stop()

    body = asyncio.run(scenario())
    assert len(body) == 2 * 28 * 28
    registry = pipeline.metrics.registry
    labels = {"format": "json"}
    assert registry.get_sample_value("gan_encode_duration_seconds_count", labels) == 1
    recorded = registry.get_sample_value("gan_encode_duration_seconds_sum", labels)
    assert recorded is not None and recorded >= encode_took[0] > 0


def test_the_deadline_runs_from_arrival_so_it_covers_the_admission_wait(model: Path) -> None:
    """Guards GAN_REQUEST_TIMEOUT_S counting from the request's arrival, not from its
    admission: a request that waited for room (GAN_ADMISSION_WAIT_MS) until past its
    deadline is answered 504 as soon as it is admitted, and nothing runs for it. Counted from
    admission, the request would get a fresh deadline and run."""
    timeout_s = 0.2
    pipeline = _pipeline(model, slots=1, max_batch=8, timeout_s=timeout_s, admission_wait_s=WAIT_S)

    async def scenario() -> None:
        holder = await pipeline.admission.admit(8)  # every place taken
        arrived = time.monotonic()
        # The room comes back only after the waiting request's deadline: the admission wait
        # is the scenario here, not a synchronisation.
        asyncio.get_running_loop().call_at(arrived + 2 * timeout_s, holder.release)
        try:
            with pytest.raises(DeadlineExceeded):
                await pipeline.answer(Job(1, _zeros, lambda pixels: pixels.tobytes()))
            assert time.monotonic() >= arrived + timeout_s  # it did wait for admission
        finally:
            await pipeline.stop()

    asyncio.run(scenario())
    registry = pipeline.metrics.registry
    assert registry.get_sample_value("gan_rejected_total", {"reason": "timeout"}) == 1
    assert registry.get_sample_value("gan_images_generated_total", {"model": "digits"}) == 0
    assert pipeline.admission.images == 0  # its permit was given back
