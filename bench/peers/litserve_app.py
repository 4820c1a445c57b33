"""Peer: LitServe with batching on (up to 16 requests, 2 ms timeout), one inference worker.

    BENCH_MODEL=models/fashion-cdcgan.onnx python litserve_app.py --port 8002

LitServe reads request parameters from a JSON body, not the query: clients POST
`/samples?n=16&format=png` with the body `{"n": 16}`. The HTTP server and the inference
worker are separate processes (LitServe's design); the benchmark stops the whole process
group.
"""

from __future__ import annotations

import argparse

import litserve as ls
from starlette.responses import Response
from work import Sampler


class GridAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.sampler = Sampler.from_env()

    def decode_request(self, request: dict) -> int:
        return int(request.get("n", 16))

    def batch(self, inputs: list[int]) -> list[int]:
        return list(inputs)

    def predict(self, counts: list[int]) -> list[bytes]:
        return self.sampler.pngs(counts)  # one onnxruntime run for the whole batch

    def unbatch(self, output: list[bytes]) -> list[bytes]:
        return output

    def encode_response(self, output: bytes) -> Response:
        return Response(output, media_type="image/png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    api = GridAPI(max_batch_size=16, batch_timeout=0.002, api_path="/samples")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
