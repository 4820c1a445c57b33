"""The GAN training loop: Algorithm 1 of Goodfellow et al. 2014 with checkpoints, exact
resume, an EMA generator, monitoring and optional DistributedDataParallel.

    gan-train --arch dcgan --conditional --epochs 20 --out runs/cdcgan
    torchrun --nproc_per_node 2 -m training.cli --dataset fake --out runs/ddp

`train` is set-up (`_setup`: run directory, data, models, optimizers, resume), then the
epoch loop (`_run_epochs`), whose step (`_gan_step`) is the paper's k discriminator
steps and one generator step, then the ending (`_finish`). What changes as training runs
lives in one `TrainingState`, which is also what a checkpoint holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
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

from core.datasets import DataError, ImageDataset, load_dataset, to_unit_range
from training import checkpoint
from training.augment import diff_augment
from training.config import TrainConfig, TrainingError
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
from training.restarts import open_resume_checkpoint, prepare_run_dir
from training.signals import StopFlag
from training.standing import standing_copy


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epoch: int  # full epochs done
    step: int  # generator steps done
    batch_in_epoch: int  # steps done in the unfinished epoch (0 when it ended on a boundary)
    interrupted: bool


@dataclass
class TrainingState:
    """Everything training changes: both networks, the EMA generator, both optimizers
    and the position (epoch, step, step within the epoch). A checkpoint is its
    `state_dict` plus every rank's RNG state and the run's fixed fields."""

    generator: nn.Module
    discriminator: nn.Module
    ema: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "generator_ema": self.ema.state_dict() if self.ema is not None else None,
            "opt_generator": self.opt_g.state_dict(),
            "opt_discriminator": self.opt_d.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
        }

    def load(self, saved: dict[str, Any]) -> None:
        self.generator.load_state_dict(saved["generator"])
        self.discriminator.load_state_dict(saved["discriminator"])
        if self.ema is not None:
            self.ema.load_state_dict(saved["generator_ema"])
        self.opt_g.load_state_dict(saved["opt_generator"])
        self.opt_d.load_state_dict(saved["opt_discriminator"])
        self.epoch, self.step = saved["epoch"], saved["step"]
        self.batch_in_epoch = saved["batch_in_epoch"]


@dataclass
class _Run:
    """What set-up fixes for the whole run (nothing here changes while it trains)."""

    config: TrainConfig
    spec: ModelSpec
    context: DistContext
    device: torch.device
    run_dir: Path
    images: torch.Tensor  # (N, C, H, W) in [-1, 1], on the device, in the models' layout
    labels: torch.Tensor  # (N,)
    sampler: DistributedSampler[int]
    steps_per_epoch: int
    g_train: nn.Module  # the generator, DDP-wrapped when distributed
    d_train: nn.Module
    fixed_z: torch.Tensor  # noise of the sample grids
    fixed_labels: torch.Tensor | None
    saver: checkpoint.RunSaver
    log: MetricsLog

    @property
    def planned_steps(self) -> int:
        planned = self.config.epochs * self.steps_per_epoch
        return min(planned, self.config.max_steps) if self.config.max_steps else planned

    @property
    def planned_epochs(self) -> int:
        """Epochs the run enters: fewer than --epochs when --max-steps ends it first."""
        return math.ceil(self.planned_steps / self.steps_per_epoch)


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
        g_cond=config.g_cond,
        upsample=config.upsample,
        spectral_norm=config.spectral_norm,
    )


def pick_device(kind: str) -> torch.device:
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda asked for, but torch sees no CUDA device")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(kind)


def train(
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    resume_from: Path | None = None,
) -> TrainResult:
    """Run `config`, or with `resume` continue its run directory from checkpoints/last.pt
    (or `resume_from`); returns where it stopped. On resume `config` must equal the saved
    config except for the options in config.RESUMABLE_OVERRIDES."""
    config = config.resolve()
    if config.arch == "mlp" and (config.g_cond != "concat" or config.upsample != "convT"):
        raise TrainingError("--g-cond cbn and --upsample nearest are dcgan options")
    resume = resume or resume_from is not None
    saved = open_resume_checkpoint(config, resume_from) if resume else None
    device = pick_device(config.device)
    context = setup(device.type)
    try:
        # --resume before any checkpoint: start over, clearing only what a run writes
        run, state = _setup(config, saved, device, context, overwrite or resume)
        with StopFlag() as stop:
            interrupted = _run_epochs(run, state, stop)
        _finish(run, state)
        # Every rank done (rank 0 also drew the curves) before any leaves the process group:
        # a rank tearing gloo down while another still talks to it can abort the process.
        barrier(context)
        return TrainResult(run.run_dir, state.epoch, state.step, state.batch_in_epoch, interrupted)
    finally:
        teardown(context)


# ---- set-up: run directory, data, models, optimizers, resume -----------------------------


def _setup(
    config: TrainConfig,
    saved: dict[str, Any] | None,
    device: torch.device,
    context: DistContext,
    overwrite: bool,
) -> tuple[_Run, TrainingState]:
    if context.enabled and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.out)
    prepare_run_dir(
        run_dir,
        resume=saved is not None,
        overwrite=overwrite,
        is_main=context.is_main,
        barrier=lambda: barrier(context),
    )
    data = _load_data(config, saved, context)

    torch.manual_seed(config.seed + context.rank)  # distinct noise per rank
    np.random.seed(config.seed + context.rank)
    spec = model_spec(config, data)
    layout = _memory_format(config, device)
    generator, discriminator = (m.to(device, memory_format=layout) for m in build_models(spec))
    assert config.beta1 is not None and config.beta2 is not None
    betas = (config.beta1, config.beta2)
    state = TrainingState(
        generator,
        discriminator,
        make_ema(generator, config.ema_decay),
        torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=betas),
        torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr, betas=betas),
    )
    if saved is not None:
        state.load(saved)
        checkpoint.restore_rng(saved["rng"][min(context.rank, len(saved["rng"]) - 1)])

    log = MetricsLog(run_dir / "metrics.jsonl")
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        if saved is not None:
            log.truncate_after(state.step)
    barrier(context)

    g_train, d_train = generator, discriminator
    if context.enabled:
        ids = [device.index] if device.type == "cuda" else None
        g_train = DistributedDataParallel(generator, device_ids=ids)
        d_train = DistributedDataParallel(discriminator, device_ids=ids)
    sampler = DistributedSampler(
        range(len(data)),
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    assert config.batch_size is not None
    steps_per_epoch = len(sampler) // config.batch_size // config.d_steps
    if steps_per_epoch == 0:
        raise TrainingError(
            f"batch size {config.batch_size} × d-steps {config.d_steps} × "
            f"{context.world_size} process(es) exceeds the {len(data)} training images"
        )
    fixed_z, fixed_labels = _fixed_noise(config, spec, device)
    run_fields = {
        "config": config.to_dict(),
        "dataset_fingerprint": data.fingerprint(),
        "model_spec": dataclasses.asdict(spec),  # export rebuilds G from this
        "class_names": list(data.class_names),
    }
    saver = checkpoint.RunSaver(run_dir / "checkpoints", run_fields, config.keep, context.is_main)
    run = _Run(
        config,
        spec,
        context,
        device,
        run_dir,
        images=torch.from_numpy(to_unit_range(data.images)).to(device, memory_format=layout),
        labels=torch.from_numpy(data.labels).to(device),  # (N,)
        sampler=sampler,
        steps_per_epoch=steps_per_epoch,
        g_train=g_train,
        d_train=d_train,
        fixed_z=fixed_z,
        fixed_labels=fixed_labels,
        saver=saver,
        log=log,
    )
    return run, state


def _load_data(
    config: TrainConfig, saved: dict[str, Any] | None, context: DistContext
) -> ImageDataset:
    data = load_dataset(
        config.dataset,
        config.data_dir,
        "train",
        image_size=config.image_size,
        channels=config.channels,
        skip_bad_files=config.skip_bad_files,
    )
    if config.conditional and not data.class_names:
        raise TrainingError(
            f"--conditional needs labels, but {config.data_dir} is a flat "
            "folder: put each class's images in a subfolder named after it"
        )
    if data.skipped_files and context.is_main:
        print(
            f"gan-train: skipped {data.skipped_files} unreadable image file(s) in "
            f"{config.data_dir} (--skip-bad-files)",
            file=sys.stderr,
        )
    fingerprint = data.fingerprint()
    if saved is not None and saved["dataset_fingerprint"] != fingerprint:
        raise TrainingError(
            f"--resume: data set fingerprint {fingerprint} differs from the checkpoint's "
            f"{saved['dataset_fingerprint']}; point --data-dir at the original data"
        )
    return data


# ---- the epoch loop ---------------------------------------------------------------------


def _run_epochs(run: _Run, state: TrainingState, stop: StopFlag) -> bool:
    """Train until --epochs or --max-steps; True when a signal stopped it."""
    config, context = run.config, run.context
    window, epoch_window = LogWindow(), LogWindow()
    assert config.batch_size is not None
    images_per_step = config.batch_size * config.d_steps * context.world_size
    progress = tqdm(
        total=run.planned_steps,
        initial=min(state.step, run.planned_steps),
        disable=not context.is_main,
        unit="step",
        leave=True,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        while state.epoch < config.epochs and not _reached(state.step, config):
            progress.set_description(f"epoch {state.epoch + 1}/{run.planned_epochs}")
            run.sampler.set_epoch(state.epoch)
            order = torch.tensor(list(run.sampler), device=run.device)
            while state.batch_in_epoch < run.steps_per_epoch:
                statistics = _gan_step(run, state, order)
                state.step += 1
                state.batch_in_epoch += 1
                for accumulator in (window, epoch_window):
                    accumulator.add(statistics, images_per_step)
                progress.update(1)
                if (
                    state.step % config.log_every == 0
                    or state.batch_in_epoch == run.steps_per_epoch
                ):
                    record = window.flush(state.epoch, state.step)
                    progress.set_postfix_str(progress_postfix(record))
                    if context.is_main:
                        run.log.write(record)
                if any_rank(stop.raised, context, run.device):
                    return True
                if _reached(state.step, config):
                    break
                if state.step % config.checkpoint_every == 0:
                    _save(run, state)
            if state.batch_in_epoch < run.steps_per_epoch:
                return False  # --max-steps ended the run mid-epoch
            # ---- epoch end: log, checkpoint, sample grid ----
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            if context.is_main:
                run.log.write(epoch_window.flush(state.epoch, state.step, kind="epoch"))
            _save(run, state, epoch=state.epoch)
            if context.is_main:
                _write_samples(run, state, f"epoch-{state.epoch:04d}.png")
        return False
    finally:
        progress.close()


def _gan_step(run: _Run, state: TrainingState, order: torch.Tensor) -> torch.Tensor:
    """One iteration of Algorithm 1: k discriminator steps, then one generator step.
    Returns the step's statistics (D loss, G loss, mean D(x), mean D(G(z)))."""
    config, spec, device = run.config, run.spec, run.device
    batch, k = config.batch_size, config.d_steps
    assert batch is not None
    augmentations = config.augmentations  # DiffAugment: on every image D sees, or none
    fake: torch.Tensor | None = None  # --reuse-fake: the last D step's batch, with its graph
    for j in range(k):
        # ---- D: maximize log D(x) + log(1 - D(G(z)))  (hinge: minimize its margin loss) ----
        chosen = order[(state.batch_in_epoch * k + j) * batch :][:batch]
        real, real_labels = run.images[chosen], run.labels[chosen]
        z, fake_labels = _noise(batch, spec, device)
        keep = config.reuse_fake and j == k - 1
        with _autocast(config, device), torch.set_grad_enabled(keep):
            fake = run.g_train(z, fake_labels)
        with _autocast(config, device):
            logits = run.d_train(
                diff_augment(torch.cat([real, fake.detach()]), augmentations),
                _cat_labels(real_labels, fake_labels),
            )
        d_loss = discriminator_loss(logits[:batch].float(), logits[batch:].float(), config.loss)
        state.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        state.opt_d.step()

    # ---- G: minimize log(1 - D(G(z))) (minimax), -log D(G(z)) (non-sat.), -D(G(z)) (hinge) ----
    with _autocast(config, device):
        if not config.reuse_fake:
            z, fake_labels = _noise(batch, spec, device)
            fake = run.g_train(z, fake_labels)
        assert fake is not None
        fake_logits = run.d_train(diff_augment(fake, augmentations), fake_labels)
    g_loss = generator_loss(fake_logits.float(), config.loss)
    state.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    state.opt_g.step()
    update_ema(state.ema, state.generator, config.ema_decay or 0.0, state.step)
    return step_statistics(d_loss, g_loss, logits[:batch].float(), fake_logits.float())


def _autocast(config: TrainConfig, device: torch.device) -> torch.autocast:
    """bfloat16 forward passes for --precision bf16 (a no-op context for fp32); parameters,
    optimizer state and the losses stay fp32."""
    return torch.autocast(device.type, torch.bfloat16, enabled=config.precision == "bf16")


def _memory_format(config: TrainConfig, device: torch.device) -> torch.memory_format:
    """Channels-last for bf16 DCGANs on the CPU, the layout oneDNN's bf16 (AMX) convolutions
    want; everything else keeps the default layout."""
    if config.precision == "bf16" and device.type == "cpu" and config.arch == "dcgan":
        return torch.channels_last
    return torch.contiguous_format


# ---- the end: a resumable stopping point, curves, a last sample grid ----------------------


def _finish(run: _Run, state: TrainingState) -> None:
    stopped_mid_epoch = state.batch_in_epoch != 0
    if stopped_mid_epoch:  # interrupted or --max-steps: make the stopping point resumable
        _save(run, state)
    if run.context.is_main:
        plot_curves(run.log.read(), run.run_dir / "curves.png")
        if stopped_mid_epoch and not (run.run_dir / "samples").exists():
            _write_samples(run, state, f"step-{state.step:07d}.png")


def _save(run: _Run, state: TrainingState, epoch: int | None = None) -> None:
    rng = gather(checkpoint.capture_rng(), run.context)  # each rank draws its own noise
    run.saver.save(state.state_dict() | {"rng": rng}, epoch=epoch)


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
def _write_samples(run: _Run, state: TrainingState, name: str) -> None:
    """The fixed-noise grid from the EMA generator (else G), on a copy with standing
    BatchNorm statistics when the config asks for them, as the export does."""
    sampler = standing_copy(state.ema or state.generator, run.spec, run.config)
    images = sampler(run.fixed_z, run.fixed_labels).cpu().numpy()  # (S, C, H, W)
    save_grid(images, columns=8, path=run.run_dir / "samples" / name)


__all__ = ["DataError", "TrainConfig", "TrainResult", "TrainingError", "TrainingState", "train"]
