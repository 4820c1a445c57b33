"""Peer: NVIDIA Triton Inference Server through PyTriton, dynamic batcher on (2 ms, up to 16
requests), measured through Triton's own HTTP endpoint (KServe v2 protocol).

    BENCH_MODEL=models/fashion-cdcgan.onnx python pytriton_app.py --port 8003 \
        --grpc-port 8004 --metrics-port 8005 --workspace /tmp/pytriton-ws

Triton's HTTP contract cannot be `POST /samples?n=16&format=png`: clients POST
`/v2/models/gan/infer` with input `n` (INT32 [1, 1]) in a JSON header and get the PNG back
as the binary output `png` (the binary-data extension), so the body carries the same bytes
after a small JSON header. The work per request is the same as every other peer's.

With `--raw` the model is the generator itself, as the Open Inference Protocol benchmark
(`python -m bench v2`) asks every v2 server for it: inputs `z` FP32 [n, latent] (and `label`
INT64 [n] for a conditional generator), output `image` FP32 [n, C, H, W]; the dynamic batcher
stacks the rows of up to 256 images from several requests into one onnxruntime run.
"""

from __future__ import annotations

import argparse

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from work import Sampler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--workspace", required=True, help="a temporary directory")
    parser.add_argument("--raw", action="store_true", help="serve the generator itself")
    args = parser.parse_args()
    sampler = Sampler.from_env()

    @batch
    def infer(n: np.ndarray) -> dict[str, np.ndarray]:
        counts = [int(k) for k in n[:, 0]]  # (B, 1): one row per request in the batch
        pngs = sampler.pngs(counts)  # one onnxruntime run for the whole batch
        return {"png": np.array(pngs, dtype=object).reshape(-1, 1)}

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        allow_metrics=False,
        log_verbose=0,
    )
    with Triton(config=config, workspace=args.workspace) as triton:
        if args.raw:
            bind_raw(triton, sampler)
            triton.serve()
            return
        triton.bind(
            model_name="gan",
            infer_func=infer,
            inputs=[Tensor(name="n", dtype=np.int32, shape=(1,))],
            outputs=[Tensor(name="png", dtype=bytes, shape=(1,))],
            config=ModelConfig(
                max_batch_size=16,
                batcher=DynamicBatcher(max_queue_delay_microseconds=2000),
            ),
            strict=False,
        )
        triton.serve()


# Images per run: the largest batch gan-serve runs by default, so both batch alike.
RAW_MAX_BATCH = 256


def bind_raw(triton: Triton, sampler: Sampler) -> None:
    """The generator as model `gan`: a request's rows are Triton's batch dimension, so the
    batcher joins requests row-wise. Triton wants at least one dimension per row, so `label`
    is INT64 [n, 1] here (the same bytes as the protocol's [n])."""

    @batch
    def infer(z: np.ndarray, label: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {"image": sampler.raw(z, None if label is None else label[:, 0])}

    inputs = [Tensor(name="z", dtype=np.float32, shape=(sampler.latent_dim,))]
    if sampler.conditional:
        inputs.append(Tensor(name="label", dtype=np.int64, shape=(1,)))
    triton.bind(
        model_name="gan",
        infer_func=infer,
        inputs=inputs,
        outputs=[Tensor(name="image", dtype=np.float32, shape=(-1, -1, -1))],
        config=ModelConfig(
            max_batch_size=RAW_MAX_BATCH,
            batcher=DynamicBatcher(max_queue_delay_microseconds=2000),
        ),
        strict=False,
    )


if __name__ == "__main__":
    main()
