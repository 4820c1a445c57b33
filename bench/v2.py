"""The Open Inference Protocol against Triton's own: v2 HTTP (wrk) and gRPC (h2load), side by side.

    python -m bench v2 --model cheap --out docs/bench-results/v2-cheap-DATE.json
    python -m bench v2 --model models/fashion-cdcgan.onnx --out docs/bench-results/v2-...json

gan-serve (its v2 HTTP routes on its port, gRPC on GAN_GRPC_PORT) and Triton through
PyTriton (its own C++ HTTP and gRPC front ends, a dynamic batcher of 2 ms and 256 images,
the model run by onnxruntime in its Python backend) serve the same ONNX file as the raw
generator: inputs `z` FP32 [n, latent] (and `label` INT64 [n]), output `image` FP32
[n, C, H, W]. Every request is the same, built once: binary tensors over HTTP (the binary
tensor extension, as `tritonclient.http` sends them) and raw contents over gRPC
(`raw_input_contents`, as `tritonclient.grpc` sends them), fixed inputs drawn from seed 0.
Triton wants one dimension per row at least, so its `label` is [n, 1]: the same bytes.

Before the load, each server answers the request once over each protocol and the images are
compared: the same file and inputs must give the same images. Then at each concurrency,
`--pairs` pairs of closed-loop runs alternate between the two (`bench.sidebyside`), HTTP
first, then gRPC: one wrk or h2load thread, one connection per client and one request in
flight on each. A gRPC answer that is an error carries no message, so an h2load run counts
as good only the answers whose bytes a good answer's frame accounts for.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from bench import h2load, sidebyside, systems, wrk
from core.contract import GeneratorSpec, inspect
from service.grpc.messages import MESSAGES, SERVICE

GAN_SERVE, TRITON = "gan-serve", "triton"
INFER_METHOD = f"/{SERVICE}/ModelInfer"


@dataclass(frozen=True)
class Inputs:
    z: npt.NDArray[np.float32]  # (n, latent)
    labels: npt.NDArray[np.int64] | None  # (n,)

    @classmethod
    def fixed(cls, spec: GeneratorSpec, n: int) -> Inputs:
        rng = np.random.default_rng(0)
        z = rng.standard_normal((n, spec.latent_dim), dtype=np.float32)
        labels = None
        if spec.conditional and spec.num_classes:
            labels = rng.integers(spec.num_classes, size=n, dtype=np.int64)
        return cls(z, labels)


@dataclass(frozen=True)
class Target:
    """One server's model name and the shape it wants `label` in."""

    model: str
    label_shape: tuple[int, ...]  # per request of n rows: (n,) or (n, 1)

    def tensors(self, inputs: Inputs) -> list[tuple[str, str, list[int], bytes]]:
        """(name, datatype, shape, raw bytes) of each input."""
        z = inputs.z
        tensors = [("z", "FP32", list(z.shape), z.tobytes())]
        if inputs.labels is not None:
            tensors.append(("label", "INT64", list(self.label_shape), inputs.labels.tobytes()))
        return tensors

    def http_request(self, inputs: Inputs) -> wrk.Request:
        """POST /v2/models/{model}/infer with binary inputs and a binary `image` output."""
        tensors = self.tensors(inputs)
        header = {
            "inputs": [
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": len(data)},
                }
                for name, datatype, shape, data in tensors
            ],
            "outputs": [{"name": "image", "parameters": {"binary_data": True}}],
        }
        head = json.dumps(header, separators=(",", ":")).encode()
        return wrk.Request(
            f"/v2/models/{self.model}/infer",
            body=head + b"".join(data for *_, data in tensors),
            headers={
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(head)),
            },
        )

    def grpc_message(self, inputs: Inputs) -> bytes:
        """A serialised ModelInferRequest with raw contents, asking for `image`."""
        request = MESSAGES["ModelInferRequest"](model_name=self.model)
        tensors = self.tensors(inputs)
        for name, datatype, shape, _ in tensors:
            tensor = request.inputs.add()
            tensor.name, tensor.datatype = name, datatype
            tensor.shape.extend(shape)
        request.outputs.add().name = "image"
        request.raw_input_contents.extend(data for *_, data in tensors)
        return bytes(request.SerializeToString())


def http_images(server: systems.Server, request: wrk.Request) -> npt.NDArray[np.float32]:
    """One answer to `request`, its binary `image` output read back."""
    ask = urllib.request.Request(
        server.base_url + request.path, data=request.body, headers=request.headers
    )
    with urllib.request.urlopen(ask, timeout=30) as answer:
        head_length = int(answer.headers["Inference-Header-Content-Length"])
        body = answer.read()
    (output,) = json.loads(body[:head_length])["outputs"]
    image = np.frombuffer(body[head_length:], np.float32)
    return image.reshape(output["shape"])


def grpc_answer(server: systems.Server, message: bytes) -> bytes:
    """One ModelInfer call with the serialised request; the serialised answer."""
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary(INFER_METHOD)  # bytes in, bytes out
        answer: bytes = call(message, timeout=30, wait_for_ready=True)
    return answer


def grpc_images(answer: bytes) -> npt.NDArray[np.float32]:
    response = MESSAGES["ModelInferResponse"].FromString(answer)
    shape = list(response.outputs[0].shape)
    return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(shape)


def http_run(
    server: systems.Server, request: wrk.Request, clients: int, duration_s: float
) -> dict[str, Any]:
    return sidebyside.measured_run(server, request, clients, duration_s)


def grpc_run(
    server: systems.Server, body: bytes, answer_bytes: int, clients: int, duration_s: float
) -> dict[str, Any]:
    """One h2load run (after an unmeasured second): the figures `sidebyside` compares."""
    url = f"http://127.0.0.1:{server.grpc_port}{INFER_METHOD}"
    h2load.run(url, body, clients, 1)  # unmeasured: connections, caches
    before = sidebyside.tree_cpu_s(server.pid)
    result = h2load.run(url, body, clients, duration_s)
    cpu = sidebyside.tree_cpu_s(server.pid) - before
    good = result.good(answer_bytes)
    return {
        "req_per_s": round(good / result.seconds, 1) if result.seconds else 0.0,
        "p50_ms": result.latency_ms["p50"],
        "p99_ms": result.latency_ms["p99"],
        "non_2xx": result.requests - good,
        "cpu_ms_per_request": round(1000 * cpu / max(good, 1), 3),
    }


def check_answers(
    servers: dict[str, systems.Server], targets: dict[str, Target], inputs: Inputs
) -> dict[str, Any]:
    """Each server answers once per protocol; all four answers must hold the same images.
    Returns each server's gRPC answer frame length and the largest difference seen."""
    images: dict[str, npt.NDArray[np.float32]] = {}
    frames: dict[str, int] = {}
    for name, server in servers.items():
        target = targets[name]
        images[f"{name} http"] = http_images(server, target.http_request(inputs))
        answer = grpc_answer(server, target.grpc_message(inputs))
        images[f"{name} grpc"] = grpc_images(answer)
        frames[name] = len(h2load.frame(answer))
    first = next(iter(images.values()))
    differences = {key: float(np.abs(value - first).max()) for key, value in images.items()}
    for key, value in images.items():
        if value.shape != first.shape or differences[key] > 1e-5:
            raise RuntimeError(f"{key} answered other images: {differences}")
    return {"answer_frame_bytes": frames, "largest_difference": max(differences.values())}


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0])
    sidebyside.add_options(parser)
    parser.add_argument("--workers", default="1", help="gan-serve's GAN_WORKERS (default 1)")
    sidebyside.add_env_option(parser, "another gan-serve setting")
    parser.add_argument(
        "--triton-threads",
        type=int,
        default=1,
        help="onnxruntime intra-op threads of Triton's model (default 1, as every peer)",
    )
    parser.add_argument(
        "--protocols", nargs="+", choices=("http", "grpc"), default=["http", "grpc"]
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    command = "python -m bench v2 " + " ".join(argv or [])
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        model = sidebyside.model_path(args.model, scratch)
        spec = inspect(model)
        inputs = Inputs.fixed(spec, args.n)
        targets = {
            GAN_SERVE: Target(spec.name, (args.n,)),
            TRITON: Target("gan", (args.n, 1)),
        }
        gan_serve = systems.System(
            GAN_SERVE,
            f"gan-serve, GAN_WORKERS={args.workers}",
            None,
            "/readyz",
            systems.SYSTEMS[GAN_SERVE].request,
            env=(("GAN_WORKERS", args.workers), ("GAN_PROVIDERS", args.provider), *args.env),
        )
        started: dict[str, systems.Server] = {}
        try:
            for name, system in ((TRITON, systems.TRITON_RAW), (GAN_SERVE, gan_serve)):
                threads = {"BENCH_THREADS": str(args.triton_threads)} if name == TRITON else {}
                started[name] = systems.start(
                    system, model, args.provider, scratch / "logs", scratch, threads, grpc=True
                )
            provider, _ = systems.active_provider(started[GAN_SERVE].base_url)
            print(
                f"model {model.name}, provider {provider}, {os.cpu_count()} cores: "
                f"{sidebyside.cpu_model()}",
                flush=True,
            )
            checked = check_answers(started, targets, inputs)
            rows: dict[str, list[dict[str, Any]]] = {}
            names = [TRITON, GAN_SERVE]
            requests = {name: targets[name].http_request(inputs) for name in names}
            bodies = {name: h2load.frame(targets[name].grpc_message(inputs)) for name in names}
            frames = checked["answer_frame_bytes"]
            for protocol in args.protocols:
                print(f"{protocol}: {' | '.join(names)} | gan-serve over triton", flush=True)
                if protocol == "http":

                    def measure(name: str, clients: int) -> dict[str, Any]:
                        return http_run(started[name], requests[name], clients, args.duration)

                else:

                    def measure(name: str, clients: int) -> dict[str, Any]:
                        return grpc_run(
                            started[name], bodies[name], frames[name], clients, args.duration
                        )

                rows[protocol] = sidebyside.compare_with(
                    names, measure, args.concurrency, args.pairs
                )
        finally:
            for server in started.values():
                server.stop()
    result = {
        **sidebyside.header(command, args, provider),
        "workers": args.workers,
        "env": dict(args.env),
        "triton_threads": args.triton_threads,
        "n": args.n,
        "checked": checked,
        "rows": rows,
    }
    sidebyside.save(result, args.out)
    return 0
