"""A small HTTP/1.1 client on asyncio streams for the open-loop, overload and burst probes.

Plain streams rather than an HTTP library: on a machine of few cores the client's own CPU
use would otherwise cap what it measures. Keep-alive connections; answers need Content-Length
(every server measured here sends it).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (connection lost or timed out)
    seconds: float  # from the moment the request was due to the end of the answer
    body: bytes = b""


class Connection:
    """One keep-alive connection to host:port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=2**22)
        return cls(reader, writer)

    async def send(self, raw_request: bytes) -> None:
        self.writer.write(raw_request)
        await self.writer.drain()

    async def receive(self) -> tuple[int, bytes]:
        """(status, body) of the next answer."""
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.reusable = False
        return status, await self.reader.readexactly(length)

    async def request(self, raw_request: bytes) -> tuple[int, bytes]:
        await self.send(raw_request)
        return await self.receive()

    def close(self) -> None:
        self.writer.close()


def raw_request(
    method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def timed(
    host: str,
    port: int,
    raw: bytes,
    timeout_s: float,
    due: float | None = None,
    connection: Connection | None = None,
) -> Answer:
    """One request on `connection` (default: a new one), timed from `due` (default: now);
    the connection is closed after it."""
    due = time.perf_counter() if due is None else due
    try:
        async with asyncio.timeout(timeout_s):
            connection = connection or await Connection.open(host, port)
            try:
                status, body = await connection.request(raw)
            finally:
                connection.close()
    except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
        return Answer(0, time.perf_counter() - due)
    return Answer(status, time.perf_counter() - due, body)
