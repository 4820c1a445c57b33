"""`gan-serve` with several workers: the parent that starts, watches and stops them.

    GAN_WORKERS=4 gan-serve            # four HTTP processes on the one port

Each worker is `python -m service.workers.worker`: its own uvicorn on its own `SO_REUSEPORT`
socket of the one address (the kernel spreads connections across the sockets evenly; one
shared accept socket would pile them onto whichever process wakes first), its own engine for
its share of the service (`service.workers.share`). The parent holds the port from start to
end, so the workers can bind it and nobody else can.

- **Shared**: a small mapped file (`service.workers.shared`) with each worker's pid and
  readiness and each API key's token bucket; prometheus-client's multiprocess directory, so
  one `/metrics` scrape of any worker shows the whole service.
- **Faults**: a worker that dies is started again at once (again after a pause that doubles
  if it keeps dying before it is ready), counted in `gan_process_restarts_total`; its
  connections die with it, the other workers go on serving. A worker that never gets ready
  five times in a row stops the service (exit 2).
- **Shutdown**: SIGTERM, SIGHUP or Ctrl-C goes to every worker, which drains (docs/service.md,
  "Shutdown"); the parent waits for all of them, then removes the shared files.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from service.models.generator import usable_cpus
from service.settings import Settings
from service.workers.shared import SharedState

log = logging.getLogger("service.workers")

INDEX_ENV, STATE_ENV = "GANSERVE_WORKER_INDEX", "GANSERVE_WORKER_STATE"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when it is imported
_GIVE_UP_AFTER = 5  # deaths in a row before ready
_FIRST_PAUSE_S, _LONGEST_PAUSE_S = 0.5, 8.0
_STOP_MARGIN_S = 15.0  # past the drain timeout, before a worker that does not stop is killed
_WATCH_S = 0.05  # how often the parent looks at its workers


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    failures: int = 0  # deaths in a row before it got ready


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT: the parent's, never listening,
    holds the port (port 0: picks one) and takes no connection; each worker listens on its
    own, and the kernel spreads connections across those."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    def __init__(self, settings: Settings, workers: int, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.count = workers
        self.root = Path(tempfile.mkdtemp(prefix="gan-serve-"))
        metrics_dir = self.root / "metrics"
        metrics_dir.mkdir()
        self.shared = SharedState.create(
            self.root / "state", workers, keys=len(settings.api_key_values())
        )
        self.holder = reuseport_socket(settings.host, settings.port)
        port = self.holder.getsockname()[1]
        self.env = {
            **env,
            "GAN_HOST": settings.host,
            "GAN_PORT": str(port),
            METRICS_ENV: str(metrics_dir),
            STATE_ENV: str(self.root / "state"),
        }
        self.workers: dict[int, Worker] = {}  # by pid
        self.stopping = False

    def start(self, index: int, failures: int = 0) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.workers.worker"],
            env={**self.env, INDEX_ENV: str(index)},
        )
        self.shared.set_pid(index, process.pid)
        self.workers[process.pid] = Worker(index, process, failures=failures)

    def stop(self, sig: int, _: FrameType | None = None) -> None:
        """Pass the signal on: each worker drains (a second one stops it at once)."""
        if not self.stopping:
            log.info("%s: stopping %d workers", signal.Signals(sig).name, len(self.workers))
        self.stopping = True
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(sig)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # each worker drains
            signal.signal(sig, self.stop)
        port = self.holder.getsockname()[1]
        log.info("%d workers on %s:%s", self.count, self.settings.host, port)
        for index in range(self.count):
            self.start(index)
        status = 0
        try:
            while self.workers and not self.stopping:
                for pid, worker in list(self.workers.items()):
                    code = worker.process.poll()
                    if code is None or self.stopping:
                        continue
                    del self.workers[pid]
                    if not self._replace(worker, code):
                        status = 2
                        self.stop(signal.SIGTERM)
                time.sleep(_WATCH_S)
            self._reap_until_stopped()
        finally:
            self._close()
        return status

    def _replace(self, worker: Worker, code: int) -> bool:
        """Start a worker in the place of one that died; False when it keeps dying before it
        gets ready."""
        index, pid = worker.index, worker.process.pid
        was_ready = self.shared.is_ready(index)
        multiprocess.mark_process_dead(pid, self.env[METRICS_ENV])  # type: ignore[no-untyped-call]
        self.shared.set_ready(index, False)
        self.shared.set_pid(index, 0)
        self.shared.add_restart()
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        failures = 0 if was_ready else worker.failures + 1
        if failures >= _GIVE_UP_AFTER:
            log.error(
                "worker %d ended by %s %d times before it was ready: stopping", index, how, failures
            )
            return False
        log.warning("worker %d (pid %d) ended by %s: starting it again", index, pid, how)
        if failures:
            time.sleep(min(_FIRST_PAUSE_S * 2 ** (failures - 1), _LONGEST_PAUSE_S))
        self.start(index, failures)
        return True

    def _reap_until_stopped(self) -> None:
        """After the signal: wait for every worker's drain, then kill what is left."""
        deadline = time.monotonic() + self.settings.drain_timeout_s + _STOP_MARGIN_S
        while self.workers and time.monotonic() < deadline:
            for pid, worker in list(self.workers.items()):
                if worker.process.poll() is not None:
                    del self.workers[pid]
            time.sleep(_WATCH_S)
        for worker in self.workers.values():
            log.error("worker %d did not stop: killed", worker.index)
            worker.process.kill()
            worker.process.wait()
        self.workers.clear()

    def _close(self) -> None:
        self.holder.close()
        self.shared.close()
        shutil.rmtree(self.root, ignore_errors=True)


def worker_count(settings: Settings) -> int:
    """GAN_WORKERS as a number: `auto` is one per usable core."""
    return usable_cpus() if settings.workers == "auto" else settings.workers


def supervise(settings: Settings, workers: int, env: Mapping[str, str]) -> int:
    """Serve with `workers` processes until SIGTERM; the exit status."""
    return Supervisor(settings, workers, env).run()
