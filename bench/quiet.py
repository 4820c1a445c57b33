"""Wait for a quiet machine before a measured run, and record what was seen.

CPU use by everything on the machine comes from /proc/stat over a short window; a run
starts once it is below a threshold (in cores), or when the wait reaches its cap, in which
case the run goes ahead and the record says the machine was busy.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Quiet:
    """What the machine looked like when a measured run started."""

    busy_cores: float | None  # CPU in use, in cores, over the last sample window
    loadavg_1m: float | None
    waited_s: float
    quiet: bool  # False: the cap was reached with the machine still busy

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot; None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, total


def busy_cores(window_s: float = 0.5) -> float | None:
    """Cores' worth of CPU in use over the next `window_s` seconds."""
    before = _cpu_times()
    time.sleep(window_s)
    after = _cpu_times()
    if before is None or after is None or after[1] == before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return round(share * (os.cpu_count() or 1), 3)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def wait_for_quiet(threshold_cores: float, max_wait_s: float, window_s: float = 0.5) -> Quiet:
    """Sample until under `threshold_cores` of CPU are busy, at most `max_wait_s` seconds."""
    started = time.monotonic()
    while True:
        busy = busy_cores(window_s)
        waited = time.monotonic() - started
        if busy is None or busy <= threshold_cores or waited >= max_wait_s:
            quiet = busy is None or busy <= threshold_cores
            return Quiet(busy, _loadavg(), round(waited, 1), quiet)
