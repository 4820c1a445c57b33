"""Graceful stop on SIGINT / SIGTERM: the loop finishes its step, checkpoints, then exits."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


class StopFlag:
    """Context manager that records SIGINT/SIGTERM instead of dying mid-step."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.raised = True
