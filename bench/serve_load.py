"""Load generator for the sampling service: concurrent clients POSTing /samples.

Reports images/s and latency percentiles. By default it starts the service twice on free
loopback ports, once with dynamic batching (GAN_MAX_BATCH, GAN_MAX_DELAY_MS as given) and
once with GAN_MAX_BATCH=1, loads each the same way, and prints the throughput ratio:

    python bench/serve_load.py --concurrency 32 --duration 10 --n 1

With `--url` it loads an already running server once instead. Rounds alternate between
the two servers, so load from neighbours on a shared machine hits both alike. Without
`--model-path` it builds a DCGAN-shaped 28x28 generator (Gemm + two ConvTranspose, random
weights: the speed of a trained one) in a temporary directory. Clients speak plain HTTP/1.1
over asyncio streams to keep their own CPU use low, but they still share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np


def build_dcgan(path: Path, latent: int = 100, seed: int = 0) -> Path:
    """z (B, 100) -> Gemm -> 128x7x7 -> ConvT 64x14x14 -> ConvT 1x28x28 -> Tanh."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        scale = 1.0 / np.sqrt(np.prod(shape[1:]) or 1)
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name
        )

    inits = [
        init("W", latent, 128 * 7 * 7),
        init("b", 128 * 7 * 7),
        init("K1", 128, 64, 4, 4),
        init("K2", 64, 1, 4, 4),
        numpy_helper.from_array(np.array([-1, 128, 7, 7], np.int64), "s"),
    ]
    convt = {"strides": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Gemm", ["z", "W", "b"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Reshape", ["r", "s"], ["x"]),
        helper.make_node("ConvTranspose", ["x", "K1"], ["c1"], **convt),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("ConvTranspose", ["r1", "K2"], ["c2"], **convt),
        helper.make_node("Tanh", ["c2"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bench-dcgan",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    helper.set_model_props(
        model,
        {
            "name": "bench-dcgan",
            "latent_dim": str(latent),
            "image_shape": "[1, 28, 28]",
            "conditional": "false",
            "arch": "dcgan",
            "format_version": "1",
        },
    )
    onnx.save(model, path)
    return path


@dataclass
class Result:
    label: str
    requests: int
    images: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        return float(np.percentile(self.latencies, q)) * 1000

    def row(self) -> str:
        return (
            f"| {self.label} | {self.requests} | {self.errors} | {self.images_per_s:.0f} | "
            f"{self.requests / self.seconds:.0f} | {self.percentile(50):.1f} | "
            f"{self.percentile(95):.1f} | {self.percentile(99):.1f} |"
        )


async def _client(
    host: str, port: int, path: str, measure_from: float, stop: float, out: Result, n: int
) -> None:
    """One keep-alive connection POSTing back to back. Plain asyncio streams rather than an
    HTTP library: on a small machine the client's own CPU use would cap the measurement."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n".encode()
    try:
        while (started := time.perf_counter()) < stop:
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if started >= measure_from:
                out.requests += 1
                if status == 200:
                    out.images += n
                    out.latencies.append(time.perf_counter() - started)
                else:
                    out.errors += 1
    finally:
        writer.close()


async def load(url: str, label: str, args: argparse.Namespace, seconds: float) -> Result:
    """`concurrency` clients POST back to back for `seconds` after `warmup` s."""
    host, port = url.removeprefix("http://").split(":")
    path = f"/samples?n={args.n}&format={args.format}"
    result = Result(label, 0, 0, 0, seconds, [])
    measure_from = time.perf_counter() + args.warmup
    stop = measure_from + seconds
    await asyncio.gather(
        *(
            _client(host, int(port), path, measure_from, stop, result, args.n)
            for _ in range(args.concurrency)
        )
    )
    result.seconds = time.perf_counter() - measure_from
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    model: Path, env_extra: dict[str, str], threads: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "GAN_MODEL_PATH": str(model),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": str(threads),
        "GAN_ACCESS_LOG": "false",
        "GAN_LOG_LEVEL": "warning",
        **env_extra,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server not ready within 120 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="load this running server once instead of starting two")
    parser.add_argument("--model-path", type=Path, help="generator ONNX (default: synthetic DCGAN)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument(
        "--duration", type=float, default=12.0, help="seconds measured per server, in all"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per server")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="unmeasured seconds at the start of each round"
    )
    parser.add_argument("--n", type=int, default=1, help="images per request")
    parser.add_argument("--format", default="npy", choices=["json", "png", "npy"])
    parser.add_argument("--max-batch", type=int, default=256, help="GAN_MAX_BATCH when batching")
    parser.add_argument("--max-delay-ms", type=float, default=2.0, help="GAN_MAX_DELAY_MS")
    parser.add_argument("--threads", type=int, default=1, help="GAN_INTRA_OP_THREADS")
    args = parser.parse_args(argv)

    header = (
        "| server | requests | errors | images/s | requests/s | p50 ms | p95 ms | p99 ms |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    if args.url:
        result = asyncio.run(load(args.url, args.url, args, args.duration))
        print(header, result.row(), sep="\n")
        return 0
    configs = {
        f"batching (max_batch {args.max_batch}, max_delay {args.max_delay_ms:g} ms)": {
            "GAN_MAX_BATCH": str(args.max_batch),
            "GAN_MAX_DELAY_MS": str(args.max_delay_ms),
        },
        "no batching (max_batch 1)": {"GAN_MAX_BATCH": "1", "GAN_MAX_DELAY_MS": "0"},
    }
    totals = {label: Result(label, 0, 0, 0, 0.0, []) for label in configs}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model_path or build_dcgan(Path(tmp) / "bench-dcgan.onnx")
        servers = {label: serve(model, env, args.threads) for label, env in configs.items()}
        try:
            # Short alternating rounds, so a neighbour's load hits both configurations alike.
            for _ in range(args.rounds):
                rates = []
                for label, (_, url) in servers.items():
                    part = asyncio.run(load(url, label, args, args.duration / args.rounds))
                    total = totals[label]
                    total.requests += part.requests
                    total.images += part.images
                    total.errors += part.errors
                    total.seconds += part.seconds
                    total.latencies += part.latencies
                    rates.append(part.images_per_s)
                ratios.append(rates[0] / rates[1])
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=60)
    batched, single = totals.values()
    print(
        f"concurrency {args.concurrency}, n={args.n}, format {args.format}, "
        f"{args.duration:g} s measured per server in {args.rounds} alternating rounds "
        f"(each after {args.warmup:g} s unmeasured), intra-op threads {args.threads}"
    )
    print(header, batched.row(), single.row(), sep="\n")
    ratio = batched.images_per_s / single.images_per_s
    print(
        f"\nthroughput ratio batching / no batching: {ratio:.2f}x "
        f"(per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
