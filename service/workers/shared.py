"""What the worker processes of one service share: one small file, mapped into each.

    shared = SharedState.create(path, workers=4, keys=2)   # the supervisor, before spawning
    shared = SharedState.attach(path)                      # each worker

It holds each worker's pid and readiness (so `/readyz` is 200 only when every worker is
ready, and `/metrics` can sum the processes' memory and CPU), the count of restarts, and one
token bucket per API key (so a key's rate limit is the service's, not each worker's). The
buckets change under an exclusive `flock` of the file: a few microseconds per request;
everything else is one writer per slot.

Layout, little-endian: int64 workers, keys, restarts; int64 pid[workers]; int64
ready[workers]; float64 (tokens, updated)[keys].
"""

from __future__ import annotations

import fcntl
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_HEADER = 3  # workers, keys, restarts


class SharedState:
    def __init__(self, path: Path, fd: int, memory: mmap.mmap) -> None:
        self.path = path
        self._fd = fd
        self._memory = memory
        header = np.frombuffer(memory, np.int64, _HEADER)
        self.workers, self.keys = int(header[0]), int(header[1])
        self._header = header
        self._pids = np.frombuffer(memory, np.int64, self.workers, _HEADER * 8)
        self._ready = np.frombuffer(memory, np.int64, self.workers, (_HEADER + self.workers) * 8)
        offset = (_HEADER + 2 * self.workers) * 8
        self._buckets = np.frombuffer(memory, np.float64, 2 * self.keys, offset).reshape(-1, 2)

    @staticmethod
    def _size(workers: int, keys: int) -> int:
        return (_HEADER + 2 * workers + 2 * keys) * 8

    @classmethod
    def create(cls, path: Path, workers: int, keys: int) -> SharedState:
        """A new file for `workers` processes and `keys` API keys (buckets start empty of
        history: each worker fills its bucket's first state under the lock)."""
        size = cls._size(workers, keys)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, size)
        memory = mmap.mmap(fd, size)
        np.frombuffer(memory, np.int64, _HEADER)[:] = (workers, keys, 0)  # read by __init__
        state = cls(path, fd, memory)
        state._buckets[:, 0] = np.nan  # NaN tokens: the bucket is full until first used
        return state

    @classmethod
    def attach(cls, path: Path) -> SharedState:
        fd = os.open(path, os.O_RDWR)
        return cls(path, fd, mmap.mmap(fd, os.fstat(fd).st_size))

    # -- workers ---------------------------------------------------------------------------

    def set_pid(self, index: int, pid: int) -> None:
        self._pids[index] = pid

    def pids(self) -> list[int]:
        return [int(pid) for pid in self._pids if pid > 0]

    def seats(self) -> dict[int, int]:
        """Worker index → pid, for the workers running now."""
        return {index: int(pid) for index, pid in enumerate(self._pids) if pid > 0}

    def set_ready(self, index: int, ready: bool) -> None:
        self._ready[index] = 1 if ready else 0

    def is_ready(self, index: int) -> bool:
        return bool(self._ready[index])

    def ready_count(self) -> int:
        return int(self._ready.sum())

    def add_restart(self) -> None:
        self._header[2] += 1  # the supervisor alone writes it

    @property
    def restarts(self) -> int:
        return int(self._header[2])

    # -- rate limits -----------------------------------------------------------------------

    def take(
        self, key: int, images: int, now: float, rate: float, burst: int, at_least: int = 0
    ) -> float:
        """Key `key`'s token bucket, as `RateLimiter.take`, under the file's lock: 0 when
        `images` were taken, else the seconds until they would be there."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            bucket = self._buckets[key]
            tokens, updated = float(bucket[0]), float(bucket[1])
            if np.isnan(tokens):
                tokens, updated = float(burst), now
            tokens = min(burst, tokens + max(now - updated, 0.0) * rate)
            need = max(images, at_least)
            wait = 0.0 if tokens >= need else (need - tokens) / rate
            if wait == 0.0:
                tokens -= images
            bucket[0], bucket[1] = tokens, now
            return wait
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Drop this process's views and mapping (the file stays for the others)."""
        del self._header, self._pids, self._ready, self._buckets
        self._memory.close()
        os.close(self._fd)


@dataclass(frozen=True)
class Seat:
    """One worker's place in the service: its index and the shared file."""

    shared: SharedState
    index: int

    @property
    def workers(self) -> int:
        return self.shared.workers

    def mark_ready(self, ready: bool) -> None:
        self.shared.set_ready(self.index, ready)

    def ready_count(self) -> int:
        return self.shared.ready_count()
