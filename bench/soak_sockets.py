"""The soak's clients on raw sockets, one connection each: the bad-input corpus, slowloris
heads and bodies, idle and silent connections, and clients that hang up at random moments.

Each reads until the server closes; the last whole answer is what the request got. A
slowloris or an idle request must be answered (408) and closed, never just dropped; a
client that hangs up is owed nothing and is only counted.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

from bench.soak_inputs import corpus, raw
from bench.soak_traffic import Ledger, Record, Stop, Target, keep_alive, outcome, pause


async def bad_input(target: Target, ledger: Ledger, stop: Stop, key: str, every_s: float) -> None:
    """The corpus, case after case, each on its own connection."""
    cases = corpus(key, max_samples=256, max_body_bytes=65536)
    index = 0
    while not stop.is_set():
        name, request = cases[index % len(cases)]
        index += 1
        sent = time.monotonic()
        status, body = await _exchange(target, request)
        result, code = outcome(status, body) if status else ("lost", body.decode())
        if 200 <= status < 300:
            result = "failed"  # a bad input must never be served
        ledger.add(
            Record("bad", None, 0, sent, time.monotonic(), status, result, f"{name}: {code}")
        )
        await pause(stop, every_s)


async def _exchange(
    target: Target, request: bytes, slow_from: int | None = None
) -> tuple[int, bytes]:
    """Send `request` (from byte `slow_from` on, one byte a second), read until the server
    closes; (status, body) of the last whole answer, or (0, what went wrong)."""
    try:
        async with asyncio.timeout(target.timeout_s):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            dribble: asyncio.Task[None] | None = None
            try:
                writer.write(request[:slow_from])
                if slow_from is not None:
                    dribble = asyncio.create_task(_dribble(writer, request[slow_from:]))
                data = await _read_to_end(reader)
            finally:
                if dribble is not None:
                    dribble.cancel()
                writer.close()
    except (OSError, TimeoutError) as exc:
        return 0, type(exc).__name__.encode()
    answers = _answers(data)
    return answers[-1] if answers else (0, b"closed without an answer")


def _answers(data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each whole answer in `data`, in order."""
    found = []
    while data.startswith(b"HTTP/1."):
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            break  # cut short: not an answer
        found.append((int(head.split(b" ", 2)[1]), rest[:length]))
        data = rest[length:]
    return found


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while chunk := await _read_some(reader):
        data += chunk
    return data


async def _read_some(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read(65536)
    except ConnectionResetError:  # after an answer the server may close with bytes unread
        return b""


async def _dribble(writer: asyncio.StreamWriter, rest: bytes) -> None:
    for index in range(len(rest)):
        await asyncio.sleep(1.0)  # the slowloris pace itself, not a synchronisation
        if writer.is_closing():
            return
        writer.write(rest[index : index + 1])


async def slowloris(target: Target, ledger: Ledger, stop: Stop, key: str, seed: int) -> None:
    """One slow client after another: a head, or a body, a byte a second; each must be
    answered (408) and closed, never just dropped."""
    rng = random.Random(seed)
    while not stop.is_set():
        if rng.random() < 0.5:  # a head that never ends, from its first byte
            kind, slow_from = "slow_head", 1
            request = raw("POST", "/samples?n=1", key)[:-2] + b"X-Pad: " + b"x" * 64
        else:  # the head at once, then the body
            data = json.dumps({"n": 1, "format": "npy"}).encode()
            kind = "slow_body"
            request = raw("POST", "/samples", key, [("Content-Type", "application/json")], data)
            slow_from = len(request) - len(data)
        sent = time.monotonic()
        status, body = await _exchange(target, request, slow_from)
        result, code = outcome(status, body) if status else ("lost", body.decode())
        ledger.add(Record(kind, key, 0, sent, time.monotonic(), status, result, code))


async def idle(target: Target, ledger: Ledger, stop: Stop, seed: int) -> None:
    """A keep-alive connection that asks once and then says nothing until the server closes
    it; or one that never says a word."""
    rng = random.Random(seed)
    while not stop.is_set():
        sent = time.monotonic()
        silent = rng.random() < 0.3
        request = b"" if silent else keep_alive(None, "GET", "/healthz")
        status, body = await _exchange(target, request)
        if silent:  # no request: whatever the server says or does is fine, none was owed
            ledger.add(Record("idle_silent", None, 0, sent, time.monotonic(), status, "ok", ""))
        else:
            result, code = outcome(status, body) if status else ("lost", body.decode())
            ledger.add(Record("idle", None, 0, sent, time.monotonic(), status, result, code))


async def hang_ups(target: Target, ledger: Ledger, stop: Stop, key: str, every_s: float) -> None:
    """Clients that leave at a random moment: mid-head, while their images are made, or
    after the first bytes of the answer."""
    rng = random.Random(11)
    tasks: set[asyncio.Task[None]] = set()

    async def one(moment: str, wait_s: float) -> None:
        request = raw("POST", "/samples?n=64&format=png", key)
        sent = time.monotonic()
        try:
            async with asyncio.timeout(target.timeout_s):
                reader, writer = await asyncio.open_connection(target.host, target.port)
                if moment == "mid_head":
                    writer.write(request[: len(request) // 2])
                else:
                    writer.write(request)
                    if moment == "mid_work":
                        await asyncio.sleep(wait_s)  # the moment chosen to leave at
                    else:
                        await reader.read(1)
                writer.close()
        except (OSError, TimeoutError):
            pass
        ledger.add(Record("hang_up", key, 0, sent, time.monotonic(), 0, "hung_up", moment))

    while not await pause(stop, every_s):
        moment = rng.choice(["mid_head", "mid_work", "mid_answer"])
        task = asyncio.create_task(one(moment, rng.uniform(0, 0.15)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
