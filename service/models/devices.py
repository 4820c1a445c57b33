"""Several GPUs: which devices a model runs on (`GAN_DEVICES`), and which one takes each run.

    pool = DevicePool({0: engine0, 1: engine1})
    with pool.take() as engine:        # the device with the fewest runs in flight
        images = engine.run(...)

One engine (its sessions per padded size) per device; a run goes to the device with the
fewest runs in flight, the lowest id among equals, so an idle GPU takes the next run while
another is busy, and one GPU alone serves when the load is light.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from core.contract import ModelError

E = TypeVar("E")


def choose_devices(setting: Sequence[int] | None, visible: int) -> list[int]:
    """The CUDA device ids to open a model on: `setting` (GAN_DEVICES), or every one of the
    `visible` GPUs the driver reports when it is unset."""
    if setting is None:
        return list(range(max(visible, 1)))
    unknown = [device for device in setting if device >= visible]
    if unknown:
        listed = ",".join(str(device) for device in setting)
        ids = f"ids 0 to {visible - 1}" if visible > 1 else "id 0" if visible else "no ids"
        raise ModelError(
            f"GAN_DEVICES={listed}: the NVIDIA driver reports {visible} GPU(s) to this process "
            f"({ids}; CUDA_VISIBLE_DEVICES renumbers them), not {unknown[0]}"
        )
    return sorted(setting)


class DevicePool(Generic[E]):
    """Engines by device id, each run sent to the one with the fewest runs in flight."""

    def __init__(self, engines: Mapping[int, E]) -> None:
        if not engines:
            raise ValueError("a device pool needs at least one engine")
        self.ids = sorted(engines)
        self.engines = [engines[device] for device in self.ids]
        self._in_flight = dict.fromkeys(self.ids, 0)
        self._lock = threading.Lock()

    def in_flight(self) -> dict[int, int]:
        """Runs in flight by device id."""
        with self._lock:
            return dict(self._in_flight)

    @contextlib.contextmanager
    def take(self) -> Iterator[E]:
        """The engine of the least busy device, counted busy until the block ends (however)."""
        with self._lock:
            device = min(self.ids, key=lambda d: (self._in_flight[d], d))
            self._in_flight[device] += 1
        try:
            yield self.engines[self.ids.index(device)]
        finally:
            with self._lock:
                self._in_flight[device] -= 1
