"""The GAN training loop: Algorithm 1 of Goodfellow et al. 2014 with checkpoints, exact
resume, an EMA generator, monitoring and optional DistributedDataParallel.

    gan-train --arch dcgan --conditional --epochs 20 --out runs/cdcgan
    torchrun --nproc_per_node 2 -m training.cli --dataset fake --out runs/ddp
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from training import checkpoint
from training.config import RESUMABLE_OVERRIDES, TrainConfig
from training.data import DataError, ImageDataset, load_dataset, to_unit_range
from training.distributed import DistContext, any_rank, barrier, gather, setup, teardown
from training.ema import make_ema, update_ema
from training.losses import discriminator_loss, generator_loss
from training.models import ModelSpec, build_models
from training.monitoring import (
    LogWindow,
    MetricsLog,
    plot_curves,
    progress_postfix,
    save_grid,
    step_statistics,
)
from training.signals import StopFlag

RUN_ARTIFACTS = ("checkpoints", "samples", "metrics.jsonl", "config.json", "curves.png")


class TrainingError(Exception):
    """A user-facing problem with the options or the run directory. One line."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epoch: int
    step: int
    interrupted: bool


def model_spec(config: TrainConfig, data: ImageDataset) -> ModelSpec:
    assert config.g_width is not None and config.d_width is not None, "resolve() first"
    return ModelSpec(
        arch=config.arch,
        latent_dim=config.latent_dim,
        image_shape=data.image_shape,
        num_classes=data.num_classes,
        conditional=config.conditional,
        g_width=config.g_width,
        d_width=config.d_width,
    )


def pick_device(kind: str) -> torch.device:
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda asked for, but torch sees no CUDA device")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(kind)


def prepare_run_dir(
    run_dir: Path, resume: bool, overwrite: bool, context: DistContext
) -> None:
    exists_nonempty = run_dir.exists() and any(run_dir.iterdir())
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise TrainingError(f"--resume: no checkpoint at {run_dir}/checkpoints/last.pt")
        return
    if exists_nonempty and not overwrite:
        raise TrainingError(
            f"run directory {run_dir} is not empty; pass --resume to continue it "
            "or --overwrite to start over"
        )
    barrier(context)  # every rank has checked before rank 0 changes anything
    if context.is_main and exists_nonempty:
        for name in RUN_ARTIFACTS:  # only what a run writes: never the user's other files
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    barrier(context)


def resolve_config(
    config: TrainConfig, explicit: set[str], resume: bool
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config to run with and, on resume, the checkpoint it continues from."""
    if not resume:
        return config.resolve(), None
    last = Path(config.out) / "checkpoints" / "last.pt"
    if not last.is_file():
        raise TrainingError(f"--resume: no checkpoint at {last}")
    state = checkpoint.load(last)
    saved = TrainConfig.from_dict(state["config"])
    refused = sorted(explicit - RESUMABLE_OVERRIDES - {"out"})
    if refused:
        names = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise TrainingError(f"--resume continues the saved config; cannot change {names}")
    for name in explicit & RESUMABLE_OVERRIDES:
        setattr(saved, name, getattr(config, name))
    saved.out = config.out
    return saved.resolve(), state


def train(config: TrainConfig, explicit: set[str] | None = None, resume: bool = False,
          overwrite: bool = False) -> TrainResult:
    """Run (or continue) training as `config` says; returns where it stopped."""
    config, state = resolve_config(config, explicit or set(), resume)
    device = pick_device(config.device)
    context = setup(device.type)
    try:
        return _train(config, state, device, context, resume, overwrite)
    finally:
        teardown(context)


def _train(
    config: TrainConfig,
    state: dict[str, Any] | None,
    device: torch.device,
    context: DistContext,
    resume: bool,
    overwrite: bool,
) -> TrainResult:
    if context.enabled and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.out)
    prepare_run_dir(run_dir, resume, overwrite, context)
    data = load_dataset(config.dataset, config.data_dir, "train")
    fingerprint = data.fingerprint()
    if state is not None and state["dataset_fingerprint"] != fingerprint:
        raise TrainingError(
            f"--resume: data set fingerprint {fingerprint} differs from the checkpoint's "
            f"{state['dataset_fingerprint']}; point --data-dir at the original data"
        )

    torch.manual_seed(config.seed + context.rank)  # distinct noise per rank
    np.random.seed(config.seed + context.rank)
    spec = model_spec(config, data)
    generator, discriminator = (m.to(device) for m in build_models(spec))
    ema = make_ema(generator, config.ema_decay)
    assert config.lr is not None and config.beta1 is not None and config.beta2 is not None
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=betas)

    epoch, step, batch_in_epoch = 0, 0, 0
    if state is not None:
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        if ema is not None:
            ema.load_state_dict(state["generator_ema"])
        opt_g.load_state_dict(state["opt_generator"])
        opt_d.load_state_dict(state["opt_discriminator"])
        epoch, step, batch_in_epoch = state["epoch"], state["step"], state["batch_in_epoch"]
        checkpoint.restore_rng(state["rng"][min(context.rank, len(state["rng"]) - 1)])

    log = MetricsLog(run_dir / "metrics.jsonl")
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        if resume:
            log.truncate_after(step)
    barrier(context)

    g_train, d_train = generator, discriminator
    if context.enabled:
        ids = [device.index] if device.type == "cuda" else None
        g_train = DistributedDataParallel(generator, device_ids=ids)
        d_train = DistributedDataParallel(discriminator, device_ids=ids)

    images = torch.from_numpy(to_unit_range(data.images)).to(device)  # (N, C, H, W)
    labels = torch.from_numpy(data.labels).to(device)  # (N,)
    sampler = DistributedSampler(
        range(len(data)), num_replicas=context.world_size, rank=context.rank,
        shuffle=True, seed=config.seed, drop_last=True,
    )
    assert config.batch_size is not None
    batch, k = config.batch_size, config.d_steps
    steps_per_epoch = len(sampler) // batch // k
    if steps_per_epoch == 0:
        raise TrainingError(
            f"batch size {batch} × d-steps {k} × {context.world_size} process(es) exceeds "
            f"the {len(data)} training images"
        )
    fixed_z, fixed_labels = _fixed_noise(config, spec, device)
    run_fields = {
        "config": config.to_dict(),
        "dataset_fingerprint": fingerprint,
        "model_spec": dataclasses.asdict(spec),  # export rebuilds G from this
        "class_names": list(data.class_names),
    }
    saver = checkpoint.RunSaver(run_dir / "checkpoints", run_fields, config.keep,
                                context.is_main)
    window, epoch_window = LogWindow(), LogWindow()
    interrupted = False

    with StopFlag() as stop:
        while epoch < config.epochs and not _reached(step, config):
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), device=device)
            progress = tqdm(
                total=steps_per_epoch, initial=batch_in_epoch, disable=not context.is_main,
                desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=True,
                file=sys.stderr, dynamic_ncols=True,
            )
            while batch_in_epoch < steps_per_epoch:
                # ---- Algorithm 1: k discriminator steps, then one generator step ----
                for j in range(k):
                    # D: maximize log D(x) + log(1 - D(G(z)))
                    chosen = order[(batch_in_epoch * k + j) * batch :][:batch]
                    real, real_labels = images[chosen], labels[chosen]
                    z, fake_labels = _noise(batch, spec, device)
                    with torch.no_grad():
                        fake = g_train(z, fake_labels)
                    logits = d_train(
                        torch.cat([real, fake]), _cat_labels(real_labels, fake_labels)
                    )
                    d_loss = discriminator_loss(logits[:batch], logits[batch:])
                    opt_d.zero_grad(set_to_none=True)
                    d_loss.backward()
                    opt_d.step()
                # G: minimize log(1 - D(G(z))) (minimax) or maximize log D(G(z)) (non-sat.)
                z, fake_labels = _noise(batch, spec, device)
                fake_logits = d_train(g_train(z, fake_labels), fake_labels)
                g_loss = generator_loss(fake_logits, config.loss)
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                update_ema(ema, generator, config.ema_decay or 0.0, step)

                step += 1
                batch_in_epoch += 1
                statistics = step_statistics(d_loss, g_loss, logits[:batch], fake_logits)
                for accumulator in (window, epoch_window):
                    accumulator.add(statistics, batch * k * context.world_size)
                progress.update(1)
                if step % config.log_every == 0 or batch_in_epoch == steps_per_epoch:
                    record = window.flush(epoch, step)
                    progress.set_postfix_str(progress_postfix(record))
                    if context.is_main:
                        log.write(record)
                if any_rank(stop.raised, context, device):
                    interrupted = True
                    break
                if _reached(step, config):
                    break
                if step % config.checkpoint_every == 0:
                    saver.save(_state(generator, discriminator, ema, opt_g, opt_d,
                                      epoch, step, batch_in_epoch, context))
            progress.close()
            if interrupted or batch_in_epoch < steps_per_epoch:
                break
            epoch, batch_in_epoch = epoch + 1, 0
            record = epoch_window.flush(epoch, step, kind="epoch")
            if context.is_main:
                log.write(record)
            saver.save(_state(generator, discriminator, ema, opt_g, opt_d,
                              epoch, step, 0, context), epoch=epoch)
            if context.is_main:
                _write_samples(ema or generator, fixed_z, fixed_labels, spec,
                               run_dir / "samples" / f"epoch-{epoch:04d}.png")

    stopped_mid_epoch = batch_in_epoch != 0
    if stopped_mid_epoch:  # interrupted or --max-steps: make the stopping point resumable
        saver.save(_state(generator, discriminator, ema, opt_g, opt_d,
                          epoch, step, batch_in_epoch, context))
    if context.is_main:
        plot_curves(log.read(), run_dir / "curves.png")
        if stopped_mid_epoch and not (run_dir / "samples").exists():
            _write_samples(ema or generator, fixed_z, fixed_labels, spec,
                           run_dir / "samples" / f"step-{step:07d}.png")
    return TrainResult(run_dir, epoch, step, interrupted)


def _reached(step: int, config: TrainConfig) -> bool:
    return config.max_steps is not None and step >= config.max_steps


def _noise(
    batch: int, spec: ModelSpec, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    z = torch.randn(batch, spec.latent_dim, device=device)  # (B, latent)
    if not spec.conditional:
        return z, None
    return z, torch.randint(0, spec.num_classes, (batch,), device=device)  # (B,)


def _cat_labels(real: torch.Tensor, fake: torch.Tensor | None) -> torch.Tensor | None:
    return None if fake is None else torch.cat([real, fake])


def _fixed_noise(
    config: TrainConfig, spec: ModelSpec, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Noise for comparable per-epoch grids, drawn from its own generator so taking it
    never shifts the training RNG stream. Conditional: one row per class, same z per column."""
    rng = torch.Generator().manual_seed(config.seed)
    if not spec.conditional:
        return torch.randn(config.sample_count, spec.latent_dim, generator=rng).to(device), None
    columns = 8
    z = torch.randn(columns, spec.latent_dim, generator=rng).repeat(spec.num_classes, 1)
    labels = torch.arange(spec.num_classes).repeat_interleave(columns)
    return z.to(device), labels.to(device)


@torch.no_grad()
def _write_samples(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None,
                   spec: ModelSpec, path: Path) -> None:
    was_training = generator.training
    generator.eval()
    images = generator(z, labels).cpu().numpy()  # (S, C, H, W)
    generator.train(was_training)
    save_grid(images, columns=8, path=path)


def _state(generator: nn.Module, discriminator: nn.Module, ema: nn.Module | None,
           opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, epoch: int, step: int,
           batch_in_epoch: int, context: DistContext) -> dict[str, Any]:
    return {
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "generator_ema": ema.state_dict() if ema is not None else None,
        "opt_generator": opt_g.state_dict(),
        "opt_discriminator": opt_d.state_dict(),
        "epoch": epoch,
        "step": step,
        "batch_in_epoch": batch_in_epoch,
        "rng": gather(checkpoint.capture_rng(), context),  # each rank draws its own noise
    }


__all__ = ["DataError", "TrainConfig", "TrainResult", "TrainingError", "train"]
