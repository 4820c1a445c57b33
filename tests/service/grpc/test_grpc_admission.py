"""A ModelInfer answer holds its admitted images until the call ends, as an HTTP answer holds
them to its last byte: a client that reads nothing keeps them admitted, and they come back
when it goes.

The client is a few HTTP/2 frames written by hand: it opens each stream with a window of
0 bytes (SETTINGS_INITIAL_WINDOW_SIZE), so the server can send the answer's headers but none
of its message.
"""

from __future__ import annotations

import socket
import struct

import numpy as np

from service.grpc.messages import MESSAGES, SERVICE
from tests.service.conftest import Server
from tests.support.gan_serve import poll

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS = 0x0, 0x1, 0x4
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
INITIAL_WINDOW_SIZE = 0x4


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload
    )


def literal(name: str, value: str) -> bytes:
    """An HPACK header field without indexing, neither part Huffman-coded (short strings)."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def read_frame(sock: socket.socket) -> tuple[int, int, int, bytes]:
    head = _exactly(sock, 9)
    length = int.from_bytes(head[:3], "big")
    stream = struct.unpack(">I", head[5:])[0] & 0x7FFFFFFF
    return head[3], head[4], stream, _exactly(sock, length)


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def infer_message(n: int) -> bytes:
    request = MESSAGES["ModelInferRequest"](model_name="fashion")
    seed = request.inputs.add()
    seed.name, seed.datatype = "seed", "INT64"
    seed.shape.append(n)
    request.outputs.add().name = "pixels"
    request.raw_input_contents.append(np.arange(n, dtype=np.int64).tobytes())
    body = bytes(request.SerializeToString())
    return b"\x00" + len(body).to_bytes(4, "big") + body


def test_images_stay_admitted_until_a_call_that_reads_nothing_ends(grpc_server: Server) -> None:
    port = grpc_server.settings.grpc_port
    assert port is not None
    admitted = lambda: grpc_server.metric("gan_admitted_images", model="fashion")  # noqa: E731
    assert admitted() == 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 0)))
        fields = b"".join(
            literal(name, value)
            for name, value in (
                (":method", "POST"),
                (":scheme", "http"),
                (":path", f"/{SERVICE}/ModelInfer"),
                (":authority", f"127.0.0.1:{port}"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
        )
        sock.sendall(
            frame(HEADERS, END_HEADERS, 1, fields) + frame(DATA, END_STREAM, 1, infer_message(4))
        )
        while True:  # until the answer's headers: its message is ready, and cannot be sent
            kind, flags, stream, _ = read_frame(sock)
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(frame(SETTINGS, ACK, 0, b""))
            if kind == HEADERS and stream == 1:
                break
            assert kind != DATA or stream != 1, "a window of 0 bytes let data through"
        assert admitted() == 4
    poll(lambda: admitted() == 0)
