"""Training throughput: the full gan-train loop against a bare PyTorch loop, in one run.

The full loop (`training.train.train`) carries everything a real run has: EMA updates,
the progress bar, metrics logging, periodic atomic checkpoints. The bare loop is the same
dcgan config's D and G steps and nothing else. Both run on the same data, alternating
for several rounds so machine noise hits both alike; the ratio of their median images/s
is the overhead figure (target ≥ 0.85).

    python -m bench train-throughput --steps 150 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from core.datasets import load_dataset, to_unit_range
from training.config import TrainConfig
from training.losses import discriminator_loss, generator_loss
from training.models import build_models
from training.train import model_spec, train


def bare_loop(config: TrainConfig, steps: int) -> float:
    """images/s of plain D and G steps, no EMA, logging or checkpoints."""
    torch.manual_seed(config.seed)
    data = load_dataset(config.dataset, config.data_dir)
    spec = model_spec(config, data)
    generator, discriminator = build_models(spec)
    assert config.lr is not None and config.beta1 is not None and config.beta2 is not None
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=betas)
    images = torch.from_numpy(to_unit_range(data.images))
    labels = torch.from_numpy(data.labels)
    assert config.batch_size is not None
    batch = config.batch_size
    order = torch.randperm(len(data))

    def step(index: int) -> None:
        chosen = order[index * batch :][:batch]
        real, real_labels = images[chosen], labels[chosen]
        z = torch.randn(batch, spec.latent_dim)
        fake_labels = torch.randint(0, 10, (batch,)) if spec.conditional else None
        with torch.no_grad():
            fake = generator(z, fake_labels)
        both = None if fake_labels is None else torch.cat([real_labels, fake_labels])
        logits = discriminator(torch.cat([real, fake]), both)
        d_loss = discriminator_loss(logits[:batch], logits[batch:])
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        z = torch.randn(batch, spec.latent_dim)
        g_loss = generator_loss(discriminator(generator(z, fake_labels), fake_labels), config.loss)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

    for index in range(5):  # warm-up, like the full loop's first (discarded) window
        step(index)
    started = time.perf_counter()
    for index in range(steps):
        step(index % (len(data) // batch))
    return steps * batch / (time.perf_counter() - started)


def full_loop(config: TrainConfig, steps: int, log_every: int) -> float:
    """images/s of gan-train's loop, from its own metrics windows after the first."""
    with tempfile.TemporaryDirectory() as directory:
        run = Path(directory) / "run"
        timed = TrainConfig(
            **{
                **config.to_dict(),
                "out": str(run),
                "max_steps": steps + 5,
                "log_every": log_every,
                "checkpoint_every": log_every * 2,
            }
        )
        train(timed)
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    windows = [r["images_per_s"] for r in records if r["kind"] == "step"][1:]
    return statistics.median(windows)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=150, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainConfig(
        dataset=args.dataset, arch="dcgan", conditional=True, threads=args.threads
    ).resolve()
    bare, full = [], []
    for round_index in range(args.rounds):
        bare.append(bare_loop(config, args.steps))
        full.append(full_loop(config, args.steps, log_every=args.steps // 5))
        print(f"round {round_index + 1}: bare {bare[-1]:.0f} img/s, full {full[-1]:.0f} img/s")
    ratio = statistics.median(full) / statistics.median(bare)
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"dcgan conditional, batch {config.batch_size}, {args.steps} steps × {args.rounds}")
    print(f"median bare loop: {statistics.median(bare):.0f} img/s")
    print(f"median full loop: {statistics.median(full):.0f} img/s")
    print(f"full / bare: {ratio:.3f} (target >= 0.85)")
    return 0
