"""`gan-serve` as a user runs it: a real `python -m service` process on a free loopback port,
for the tests that need the whole process (signals, exit codes, its log, the shipped models).

    with gan_serve({"GAN_MODEL_DIR": str(tmp_path)}, tmp_path / "server.log") as served:
        httpx.post(served.url + "/samples", params={"n": 1})

Its environment is this process's without any `GAN_*` variable (a setting exported in the
shell does not leak into a test), plus `env`. Start-up waits until `/readyz` answers 200, and
fails with the server's log if the process ends first. On leaving, a process still running
gets SIGTERM (its drain), then SIGKILL if it has not ended within `stop_timeout_s`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.processes import stopping


def poll(
    condition: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "the condition",
    interval: float = 0.02,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Wait until condition() is truthy and return it; fail after `timeout` seconds. An
    exception in `tolerate` (a server not listening yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@dataclass
class Served:
    """A running `gan-serve` process and its address."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def status(self, path: str) -> int | None:
        """GET `path`'s status, None if nothing answers; the process must still be running."""
        assert self.process.poll() is None, self.log()
        try:
            return self.get(path).status_code
        except httpx.TransportError:
            return None

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent)."""
        samples = metric_samples(self.get("/metrics").text)
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without `GAN_*` settings, plus `env`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GAN_")}
    return {**inherited, **env}


@contextmanager
def gan_serve(
    env: Mapping[str, str],
    log_path: Path,
    *,
    flags: tuple[str, ...] = (),
    ready_timeout_s: float = 60.0,
    stop_timeout_s: float = 60.0,
    preexec_fn: Callable[[], None] | None = None,
    cwd: Path | None = None,
) -> Iterator[Served]:
    """Start `python -m service --host 127.0.0.1 --port PORT *flags`, ready, and stop it after."""
    port = free_port()
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, *flags],
            env=environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
            cwd=cwd,
        )
        served = Served(process, port, log_path)
        with stopping(process, stop_timeout_s):
            poll(lambda: served.status("/readyz") == 200, timeout=ready_timeout_s)
            yield served
