"""The whole service's process series, for the scrape of any worker: what a one-process
service reports of itself (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
`process_open_fds`), summed over the worker processes, and the workers' own health.

Read from /proc (Linux) at each scrape; a worker that is gone is skipped, so the CPU counter
drops by its share when one is restarted (Prometheus's rate() reads a drop as a reset).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.metrics import RESTARTS_HELP, WORKER_CPU_HELP, WORKERS_HELP
from service.workers.shared import SharedState

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _usage(pid: int) -> tuple[float, int, int] | None:
    """(CPU seconds, resident bytes, open fds) of `pid`, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    return cpu, resident, fds


class WorkerCollector(Collector):
    def __init__(self, shared: SharedState) -> None:
        self.shared = shared

    def collect(self) -> Iterator[Metric]:
        seats = {i: u for i, pid in self.shared.seats().items() if (u := _usage(pid)) is not None}
        usages = list(seats.values())
        yield CounterMetricFamily(
            "process_cpu_seconds",
            "CPU time of every worker process, in seconds.",
            value=sum(u[0] for u in usages),
        )
        yield GaugeMetricFamily(
            "process_resident_memory_bytes",
            "Resident memory of every worker process, in bytes.",
            value=sum(u[1] for u in usages),
        )
        yield GaugeMetricFamily(
            "process_open_fds",
            "Open file descriptors of every worker process.",
            value=sum(u[2] for u in usages),
        )
        yield GaugeMetricFamily(
            "gan_workers",
            WORKERS_HELP,
            value=self.shared.workers,
        )
        yield GaugeMetricFamily(
            "gan_workers_ready",
            "Worker processes ready to serve.",
            value=self.shared.ready_count(),
        )
        by_worker = CounterMetricFamily(
            "gan_worker_cpu_seconds", WORKER_CPU_HELP, labels=["worker"]
        )
        for index, usage in sorted(seats.items()):
            by_worker.add_metric([str(index)], usage[0])
        yield by_worker
        yield CounterMetricFamily(
            "gan_process_restarts",
            RESTARTS_HELP,
            value=self.shared.restarts,
        )
