"""The soak's HTTP clients on keep-alive connections: normal requests of every format and
size, bursts, and API keys driven open-loop at and over their rate; and the `Ledger` every
client of the soak (these and bench/soak_sockets.py) writes each request to.

A request's outcome: `ok` (2xx), `refused` (a 4xx, or a 503/504 naming its reason in the
JSON error shape, or a connection refused before a byte was sent), `failed` (any other 5xx),
`lost` (no status: a reset or an empty close), or `hung_up` (the client left on purpose; no
answer is owed). Raw asyncio streams, as in `bench.httpclient`: on two cores an HTTP
library's own CPU use would crowd the server out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field

from bench.soak_inputs import raw

FORMATS = ("json", "png", "npy")
KEEP_ALIVE_S = 2.5  # a kept connection idle longer than this is not reused


@dataclass(frozen=True)
class Record:
    kind: str  # the client that sent it: normal, burst, at, over, bad, slowloris, ...
    key: str | None
    images: int  # images asked for (0: not a generating request)
    sent: float  # time.monotonic() before the first byte
    done: float  # ... after the last byte of the answer (or the failure)
    status: int  # 0: no status
    outcome: str  # ok, refused, failed, lost, hung_up
    reason: str  # the error code, or what went wrong without a status


@dataclass
class Ledger:
    records: list[Record] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.records.append(record)


def outcome(status: int, body: bytes) -> tuple[str, str]:
    """(outcome, reason) of an answer with a status."""
    code = ""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        code = str(json.loads(body)["error"]["code"])
    if status < 400:
        return "ok", ""
    if status < 500:
        return "refused", code
    if status in (503, 504) and code:
        return "refused", code
    return "failed", code or f"{status} without a reason"


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    timeout_s: float  # longest wait for one answer: the deadline, its grace and slack


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server keeps the connection) of one answer."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed without an answer")
    status, length, keep = int(status_line.split()[1]), 0, True
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    return status, await reader.readexactly(length), keep


class Client:
    """One keep-alive connection, reopened when the server closes it after an answer, and
    not reused once idle for KEEP_ALIVE_S: as an HTTP client's pool does, so that a request
    never races the server's idle close (GAN_KEEP_ALIVE_TIMEOUT_S, 5 s by default)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.last_used = 0.0

    async def send(
        self, ledger: Ledger, kind: str, key: str | None, images: int, request: bytes
    ) -> Record:
        sent = time.monotonic()
        if self.streams is not None and (
            sent - self.last_used > KEEP_ALIVE_S or self.streams[0].at_eof()
        ):
            self.close()
        reused = self.streams is not None
        try:
            async with asyncio.timeout(self.target.timeout_s):
                if self.streams is None:
                    try:
                        self.streams = await asyncio.open_connection(
                            self.target.host, self.target.port, limit=2**22
                        )
                    except ConnectionRefusedError:
                        return _log(ledger, kind, key, images, sent, 0, "refused", "not listening")
                reader, writer = self.streams
                writer.write(request)
                await writer.drain()
                status, body, keep = await _read_answer(reader)
        except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close()
            what = f"{type(exc).__name__}{' on a reused connection' if reused else ''}"
            return _log(ledger, kind, key, images, sent, 0, "lost", what)
        self.last_used = time.monotonic()
        if not keep:
            self.close()
        return _log(ledger, kind, key, images, sent, status, *outcome(status, body))

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


def _log(
    ledger: Ledger,
    kind: str,
    key: str | None,
    images: int,
    sent: float,
    status: int,
    result: str,
    reason: str,
) -> Record:
    record = Record(kind, key, images, sent, time.monotonic(), status, result, reason)
    ledger.add(record)
    return record


def keep_alive(
    key: str | None, method: str, target: str, body: dict[str, object] | None = None
) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    headers = [("Content-Type", "application/json")] if body is not None else []
    request = raw(method, target, key, headers, data)
    return request.replace(b"Connection: close\r\n", b"")


def closing(request: bytes) -> bytes:
    """`request` on a connection of its own: the server closes it after the answer."""
    return request.replace(b"Host: soak\r\n", b"Host: soak\r\nConnection: close\r\n", 1)


def normal_request(rng: random.Random, key: str, max_samples: int) -> tuple[int, bytes]:
    """(images, request): every format and size, in the query or a JSON body, /interpolate,
    the model list and the probes."""
    # small requests most often, and now and then the largest allowed
    sizes = [s for s in (1, 1, 4, 4, 16, 16, 64, 256) if s < max_samples] + [max_samples]
    n, fmt, seed = rng.choice(sizes), rng.choice(FORMATS), rng.randrange(2**32)
    pick = rng.random()
    if pick < 0.65:
        return n, keep_alive(key, "POST", f"/samples?n={n}&format={fmt}&seed={seed}")
    if pick < 0.75:
        return n, keep_alive(key, "POST", "/samples", {"n": n, "format": fmt, "seed": seed})
    if pick < 0.85:
        steps = rng.choice([s for s in (2, 8, 32) if s <= max_samples])
        query = f"from_seed={seed}&to_seed={seed + 1}&steps={steps}&format={fmt}"
        return steps, keep_alive(key, "POST", f"/interpolate?{query}")
    if pick < 0.95:
        return 0, keep_alive(key, "GET", "/models")
    return 0, keep_alive(key, "GET", rng.choice(["/healthz", "/readyz"]))


Stop = asyncio.Event


async def normal(
    target: Target,
    ledger: Ledger,
    stop: Stop,
    keys: list[str],
    max_samples: int,
    seed: int,
    fresh: bool = False,
) -> None:
    """A closed-loop client with a think time of up to 100 ms; `fresh`: a new connection
    for each request."""
    rng, client = random.Random(seed), Client(target)
    while not stop.is_set():
        key = rng.choice(keys)
        images, request = normal_request(rng, key, max_samples)
        await client.send(ledger, "normal", key, images, closing(request) if fresh else request)
        await pause(stop, rng.uniform(0, 0.1))
    client.close()


async def bursts(
    target: Target, ledger: Ledger, stop: Stop, keys: list[str], size: int, every_s: float
) -> None:
    """`size` requests at once on new connections, every `every_s` seconds."""
    rng = random.Random(7)
    while not await pause(stop, every_s):

        async def one() -> None:
            client, key = Client(target), rng.choice(keys)
            await client.send(ledger, "burst", key, 16, keep_alive(key, *_PNG16))
            client.close()

        await asyncio.gather(*(one() for _ in range(size)))


_PNG16 = ("POST", "/samples?n=16&format=png")


async def keyed(
    target: Target, ledger: Ledger, stop: Stop, kind: str, key: str, images: int, every_s: float
) -> None:
    """Open loop: `images` every `every_s` seconds on `key`, each request due on its own
    clock, whatever the answers' latency (a late answer must not slow the offered rate)."""
    request = keep_alive(key, "POST", f"/samples?n={images}&format=npy")
    idle: list[Client] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        client = idle.pop() if idle else Client(target)
        await client.send(ledger, kind, key, images, request)
        idle.append(client)

    start = time.monotonic()
    for due in range(1_000_000_000):
        if await pause(stop, start + due * every_s - time.monotonic()):
            break
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    for client in idle:
        client.close()


async def pause(stop: Stop, seconds: float) -> bool:
    """Wait `seconds` or until `stop`; whether stop is set. Paces the load, nothing else."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
