"""The run slots' side of the pipeline: what one slot's thread does with one run.

A slot builds the inputs of every request's rows in the run (seeded requests' rows in one
pass), runs onnxruntime (which releases the GIL), converts the output to uint8 pixels once
(unless every request in it wants the float output itself: the v2 raw form), and encodes
the body of each request whose last rows it ran: one thread hop per run, not several per
request. Slots run at a lower CPU priority than the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import cast

import numpy as np

from core.contract import GeneratorSpec, to_uint8
from service.models.generator import Generator
from service.pipeline import seeding
from service.pipeline.jobs import Images, Labels, Latents, Pixels, Run, RunOutcome, Slice

log = logging.getLogger("service.pipeline.slots")

# How many nice steps below the event loop's the run slots' CPU priority is (Linux).
SLOT_NICENESS = 10


def behind_the_event_loop() -> None:
    """Lower this run slot thread's CPU priority, so that when cores are short the event loop
    runs first: admission, refusals, /healthz and answers do not wait behind model runs
    (the figures under overload: docs/benchmarks.md).
    Linux gives each thread its own nice value; elsewhere, or where refused, nothing changes."""
    thread = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(now + SLOT_NICENESS, 19))


def generate_batch(generator: Generator, run: Run, outcome: RunOutcome) -> None:
    """In a slot's thread: build the run's inputs, run the model, convert to pixels, and
    encode the body of every request whose last rows this run held."""
    live = [(t, a, b) for t, a, b in run.batch if t.error is None]
    if not live:
        return
    z, labels = batch_inputs(generator.spec, live)
    started = time.perf_counter()
    images = generator.run(z, labels, run.stop)
    outcome.run_s = time.perf_counter() - started
    outcome.images = int(z.shape[0])
    pixels: Pixels | None = None  # converted once per run, and only if a request wants it
    offset = 0
    for ticket, a, b in live:
        job = ticket.job
        if job.encode_images is None:
            if pixels is None:
                pixels = to_uint8(images)
            ticket.out[a:b] = pixels[offset : offset + b - a]
        else:
            ticket.out[a:b] = images[offset : offset + b - a]
        offset += b - a
        with ticket.lock:
            ticket.rows_done += b - a
            complete = ticket.rows_done == job.n
        if complete and ticket.error is None:
            encode_started = time.perf_counter()
            try:
                # The buffer's dtype is the one the job asked for (`Pipeline._enqueue`).
                if job.encode_images is None:
                    body = job.encode(cast(Pixels, ticket.out))
                else:
                    body = job.encode_images(cast(Images, ticket.out))
            except Exception as exc:
                log.error("model %s: encoding failed: %r", generator.spec.name, exc)
                ticket.encode_error = exc
                continue
            # The time first: a sibling run's answer on the event loop may see the body at
            # once, and must see the time it took with it.
            ticket.encode_s = time.perf_counter() - encode_started
            ticket.body = body


def batch_inputs(spec: GeneratorSpec, live: list[Slice]) -> tuple[Latents, Labels | None]:
    """The run's z and labels: seeded requests' rows in one pass, others request by
    request."""
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
