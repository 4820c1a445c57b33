"""The servers under test: gan-serve and the peers, each started as its own process group on
a free loopback port and stopped as a group (LitServe's and BentoML's workers, Triton's
server and Python stub go with their parent).

Every server gets the same model file, the provider the service reported active, and one
onnxruntime intra-op thread (peers; gan-serve runs its own defaults). Their logs go to the
run's log folder so a failed start can be read afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import peer_envs
from bench.wrk import Request

try:  # the tests' shared helper, when the repository's tests/ is importable
    from tests.support.ports import free_port
except ImportError:  # pragma: no cover - an installed copy of bench/ without tests/
    import socket

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


PEERS_DIR = Path(__file__).resolve().parent / "peers"


def _samples(n: int, fmt: str) -> Request:
    return Request(f"/samples?n={n}&format={fmt}")


def _litserve(n: int, fmt: str) -> Request:
    body = json.dumps({"n": n}).encode()
    return Request(f"/samples?n={n}&format={fmt}", body=body, headers=_JSON)


def _triton(n: int, fmt: str) -> Request:
    body = {
        "inputs": [{"name": "n", "shape": [1, 1], "datatype": "INT32", "data": [n]}],
        "outputs": [{"name": "png", "parameters": {"binary_data": True}}],
    }
    return Request("/v2/models/gan/infer", body=json.dumps(body).encode(), headers=_JSON)


_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class System:
    name: str
    description: str
    peer: str | None  # the virtual environment of a peer; None for gan-serve
    ready_path: str
    request: Callable[[int, str], Request]  # (n, format) -> the request that asks for it
    formats: tuple[str, ...] = ("png",)
    env: tuple[tuple[str, str], ...] = ()  # extra environment (gan-serve's settings)
    args: tuple[str, ...] = ()  # extra arguments of a peer's app


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System(
            "gan-serve", "gan-serve, defaults", None, "/readyz", _samples, ("png", "json", "npy")
        ),
        System(
            "gan-serve-nobatch",
            "gan-serve, GAN_MAX_BATCH=1",
            None,
            "/readyz",
            _samples,
            ("png", "json", "npy"),
            (("GAN_MAX_BATCH", "1"),),
        ),
        System(
            "fastapi", "plain FastAPI, sync endpoint, no batching", "fastapi", "/healthz", _samples
        ),
        System(
            "litserve", "LitServe, batching (16 requests, 2 ms)", "litserve", "/health", _litserve
        ),
        System(
            "triton",
            "Triton via PyTriton, own HTTP endpoint, dynamic batcher (2 ms)",
            "triton",
            "/v2/models/gan/ready",
            _triton,
        ),
        System(
            "bentoml", "BentoML, adaptive batching (16 requests)", "bentoml", "/readyz", _samples
        ),
    )
}
PEERS = tuple(name for name, s in SYSTEMS.items() if s.peer)

# The raw generator (z, label -> image) behind Triton's own HTTP and gRPC: `bench v2`.
TRITON_RAW = System(
    "triton-raw",
    "Triton via PyTriton, the generator itself, dynamic batcher (2 ms, 256 images)",
    "triton",
    "/v2/models/gan/ready",
    _triton,
    args=("--raw",),
)


class Server:
    """One running system; `stop()` ends its whole process group."""

    def __init__(
        self,
        system: System,
        process: subprocess.Popen[bytes],
        port: int,
        grpc_port: int | None = None,
    ) -> None:
        self.system, self.process, self.port = system, process, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.grpc_port = grpc_port  # where it serves v2 over gRPC, if it does

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group and every descendant (BentoML starts its workers in
        sessions of their own, out of the group), then SIGKILL whatever is left."""
        tree = descendants(self.pid)
        _signal(self.pid, tree, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal(self.pid, tree, signal.SIGKILL)
        self.process.wait(timeout=timeout_s)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _signal(group: int, pids: list[int], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _command(
    system: System, port: int, grpc_port: int, scratch: Path, source: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    if system.peer is None:
        gan_serve = Path(sys.executable).with_name("gan-serve")
        # `python -m service` in another checkout imports that checkout's packages first.
        installed = gan_serve.exists() and source is None
        command = [str(gan_serve)] if installed else [sys.executable, "-m", "service"]
        return [*command, "--host", "127.0.0.1", "--port", str(port)], {}
    python = str(peer_envs.python_of(system.peer))
    if system.peer == "fastapi":
        return [
            python,
            "-m",
            "uvicorn",
            "fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ], {}
    if system.peer == "litserve":
        return [python, "litserve_app.py", "--port", str(port)], {}
    if system.peer == "triton":
        libdir = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # Triton's Python stub must load this interpreter's libpython, not the system's.
        env = {
            "LD_LIBRARY_PATH": ":".join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")]))
        }
        return [
            python,
            "pytriton_app.py",
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            "--metrics-port",
            str(free_port()),
            "--workspace",
            str(scratch / "pytriton-workspace"),
            *system.args,
        ], env
    if system.peer == "bentoml":
        bentoml = str(peer_envs.python_of("bentoml").with_name("bentoml"))
        env = {"BENTOML_HOME": str(scratch / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "True"}
        return [
            bentoml,
            "serve",
            "bentoml_service:Front",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ], env
    raise ValueError(f"unknown peer {system.peer}")


def start(
    system: System,
    model: Path,
    provider: str,
    logs: Path,
    scratch: Path,
    extra_env: dict[str, str] | None = None,
    ready_timeout_s: float = 240.0,
    source: Path | None = None,
    grpc: bool = False,
) -> Server:
    """Start `system` and wait until its readiness path answers 200. `source`: run
    gan-serve's code from that checkout (another revision) instead of this one. `grpc`: have
    gan-serve serve gRPC too (GAN_GRPC_PORT); Triton always does."""
    port, grpc_port = free_port(), free_port()
    model = model.resolve()  # peers run in bench/peers/
    command, env = _command(system, port, grpc_port, scratch, source)
    if grpc and system.peer is None:
        env["GAN_GRPC_PORT"] = str(grpc_port)
    serves_grpc = system.peer == "triton" or (grpc and system.peer is None)
    env = {
        **os.environ,
        "GAN_MODEL_PATH": str(model),
        "GAN_ACCESS_LOG": "false",
        "GAN_LOG_LEVEL": "warning",
        "BENCH_MODEL": str(model),
        "BENCH_PROVIDER": provider,
        "BENCH_THREADS": "1",
        **dict(system.env),
        **(extra_env or {}),
        **env,
    }
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{system.name}.log").open("ab") as log:  # the server writes its own copy
        process = subprocess.Popen(
            command,
            cwd=PEERS_DIR if system.peer else source,
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(system, process, port, grpc_port if serves_grpc else None)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(
                f"{system.name} exited with {process.returncode}; see "
                f"{logs / (system.name + '.log')}"
            )
        if status(server.base_url + system.ready_path) == 200:
            return server
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"{system.name} not ready within {ready_timeout_s:g} s")


def status(url: str, timeout_s: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def active_provider(base_url: str) -> tuple[str, dict[str, Any]]:
    """(`cpu` or `cuda`, the default model's card) from gan-serve's GET /models."""
    cards = get_json(base_url + "/models")["models"]
    card = next((c for c in cards if c.get("default")), cards[0])
    provider = str(card.get("provider", "cpu")).lower()
    return ("cuda" if "cuda" in provider else "cpu"), card


def metric_total(base_url: str, name: str) -> float:
    """Sum of every sample named `name` in the Prometheus text at /metrics."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` (VmRSS), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def main_thread_cpu_ms(pid: int) -> float | None:
    """CPU time (user + system) of `pid`'s main thread so far, ms: an asyncio server's event
    loop. Linux only (/proc); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return 1000.0 * ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """The service's process tree at one moment."""

    processes: int
    rss_mb: float
    fds: int
    threads: int
    shm_entries: int


def usage(pid: int) -> Usage:
    rss = 0.0
    fds = threads = 0
    members = [pid, *descendants(pid)]
    for member in members:
        rss += rss_mb(member) or 0.0
        try:
            fds += len(os.listdir(f"/proc/{member}/fd"))
            threads += len(os.listdir(f"/proc/{member}/task"))
        except OSError:
            continue
    shm = len(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else 0
    return Usage(len(members), round(rss, 1), fds, threads, shm)
