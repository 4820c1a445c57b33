"""Child processes of the tests: stopped the way a user or an orchestrator stops them."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def stopping(process: subprocess.Popen[Any], timeout_s: float) -> Iterator[None]:
    """On leaving: SIGTERM `process` if it still runs, SIGKILL it if it has not ended within
    `timeout_s`, and reap it."""
    try:
        yield
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()
