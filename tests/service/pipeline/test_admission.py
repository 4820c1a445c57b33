"""Admission's refusal path, on a real event loop: room given back by callbacks that are
already due when a request does not fit goes to that request instead of a 503."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import QueueFull
from service.metrics import Metrics
from service.pipeline.admission import Admission, DrainRate, MemoryBudget


def _admission() -> Admission:
    metrics = Metrics(latency_buckets=(0.1, 1.0), max_batch=8)
    return Admission(
        "m",
        max_images=8,
        held_bytes_per_image=1,
        budget=MemoryBudget(1 << 20),
        rate=DrainRate(100.0, 1),
        metrics=metrics,
    )


def test_room_given_back_by_callbacks_already_due_goes_to_the_waiting_request() -> None:
    async def scenario() -> int:
        admission = _admission()
        holder = await admission.admit(8)
        loop = asyncio.get_running_loop()
        # A hang-up read by the loop gives its room back a few callbacks later (watcher,
        # waiter, middleware): three hops here, all due before the next request is refused.
        loop.call_soon(loop.call_soon, loop.call_soon, holder.release)
        permit = await admission.admit(2, wait_s=0.0)
        return permit.images

    assert asyncio.run(scenario()) == 2


def test_a_request_that_does_not_fit_is_still_refused_at_once() -> None:
    async def scenario() -> None:
        admission = _admission()
        await admission.admit(8)
        with pytest.raises(QueueFull):
            await admission.admit(1, wait_s=0.0)
        assert admission.images == 8

    asyncio.run(scenario())


def test_a_refusal_holds_nothing_and_room_due_before_it_admits_instead() -> None:
    async def scenario() -> None:
        admission = _admission()
        holder = await admission.admit(6)
        with pytest.raises(QueueFull) as refused:
            await admission.admit(3, wait_s=0.0)
        assert refused.value.retry_after_s > 0
        assert admission.images == 6
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, holder.release)  # due: the refusal waits for it
        assert (await admission.admit(3, wait_s=0.0)).images == 3
        assert admission.images == 3

    asyncio.run(scenario())


def test_waiting_requests_are_admitted_in_arrival_order_so_a_large_one_is_not_starved() -> None:
    async def scenario() -> list[str]:
        admission = _admission()
        first, second = await admission.admit(4), await admission.admit(4)
        order: list[str] = []

        async def wait_for(name: str, n: int) -> None:
            permit = await admission.admit(n, wait_s=30.0)
            order.append(name)
            permit.release()

        large = asyncio.create_task(wait_for("large", 8))
        await asyncio.sleep(0)  # the large request is in line first
        small = asyncio.create_task(wait_for("small", 1))
        await asyncio.sleep(0)
        first.release()  # room for the small one, not yet for the large one
        for _ in range(10):
            await asyncio.sleep(0)
        assert order == []  # the small one waits behind the large one
        second.release()
        await asyncio.gather(large, small)
        return order

    assert asyncio.run(scenario()) == ["large", "small"]


def test_a_request_that_gives_up_waiting_lets_the_next_in_line_through() -> None:
    async def scenario() -> str:
        admission = _admission()
        holder = await admission.admit(4)
        impatient = asyncio.create_task(admission.admit(8, wait_s=0.0))
        patient = asyncio.create_task(admission.admit(4, wait_s=30.0))
        with pytest.raises(QueueFull):
            await impatient
        permit = await asyncio.wait_for(patient, timeout=10)
        holder.release()
        return f"{permit.images} of {admission.images}"

    assert asyncio.run(scenario()) == "4 of 4"
