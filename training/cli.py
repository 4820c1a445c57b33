"""Command lines of the training package: gan-train and gan-export (gan-evaluate is
`evaluation.cli`).

Every user error ends as one line on stderr and exit code 2 (`core.console`);
`main(argv)` functions take an argument list so tests call them in-process.
``python -m training.cli`` is gan-train (which is what ``torchrun -m training.cli`` runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from core.console import OneLineParser, fail, require
from core.datasets import TRAIN_DATASETS, DataError
from core.folder import IMAGE_SIZES
from training.config import (
    ARCHS,
    AUGMENTATIONS,
    DEVICES,
    G_CONDITIONINGS,
    LOSSES,
    PRECISIONS,
    UPSAMPLINGS,
    TrainConfig,
)

# The modules of the `train` extra (pyproject.toml), with the names people know them by.
# `pip install -e .` alone is the service: none of them. Nothing above imports them, so the
# console scripts get as far as `require_train_extra` on that install.
TRAIN_EXTRA_MODULES = {
    "torch": "PyTorch",
    "onnxscript": "onnxscript",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
}
INSTALL_TRAIN_EXTRA = "pip install -e '.[train]' (CPU machines: see README, \"Training\")"


def require_train_extra(prog: str, work: str) -> None:
    """One line and exit 2 where the `train` extra is not installed."""
    require(prog, work, TRAIN_EXTRA_MODULES, INSTALL_TRAIN_EXTRA)


def _positive(kind: type[int] | type[float], minimum: float = 1) -> object:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum {minimum}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1)")
    return value


def _augmentations(text: str) -> str:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown policy {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}"
        )
    return ",".join(names)


def train_parser() -> OneLineParser:
    d = TrainConfig()
    p = OneLineParser(
        prog="gan-train",
        description="Train a GAN (Goodfellow et al. 2014, Algorithm 1) and write a run directory.",
        argument_default=argparse.SUPPRESS,  # so we know which flags were given (resume)
    )
    a = p.add_argument
    a("--out", metavar="RUN", help=f"run directory (default {d.out})")
    a(
        "--dataset",
        choices=TRAIN_DATASETS,
        help=f"training data; folder: your own PNG/JPEG files in --data-dir (default {d.dataset})",
    )
    a(
        "--data-dir",
        help="directory of idx files, or of images for --dataset folder (one "
        "subfolder per class, or flat for an unconditional model) (default $GAN_DATA_DIR, "
        "else /usr/share/datasets/fashion-mnist for fashion-mnist)",
    )
    a(
        "--image-size",
        type=int,
        choices=IMAGE_SIZES,
        help="--dataset folder: side images "
        "are centre-cropped and resized to (default: the largest not above the files')",
    )
    a(
        "--channels",
        type=int,
        choices=(1, 3),
        help="--dataset folder: 1 grayscale or 3 RGB (default: 3 if any file has colour, else 1)",
    )
    a(
        "--skip-bad-files",
        action="store_true",
        help="--dataset folder: skip (and count) files that cannot be decoded instead of stopping",
    )
    a("--arch", choices=ARCHS, help=f"model family (default {d.arch})")
    a("--conditional", action="store_true", help="class-conditional G and projection D")
    a("--latent-dim", type=_positive(int), help=f"size of z (default {d.latent_dim})")
    a("--g-width", type=_positive(int), help="generator width (mlp 256, dcgan 32)")
    a("--d-width", type=_positive(int), help="discriminator width (mlp 256, dcgan 32)")
    a(
        "--loss",
        choices=LOSSES,
        help="objective: the paper's minimax, its non-saturating G "
        f"loss, or the hinge loss (default {d.loss})",
    )
    a(
        "--d-steps",
        type=_positive(int),
        help=f"discriminator steps k per generator step (default {d.d_steps})",
    )
    a("--epochs", type=_positive(int), help=f"passes over the data (default {d.epochs})")
    a("--max-steps", type=_positive(int), help="stop after this many generator steps")
    a("--batch-size", type=_positive(int), help="minibatch size m (mlp 100, dcgan 128)")
    a("--lr", type=_positive(float, 1e-12), help="Adam learning rate (default 2e-4)")
    a("--beta1", type=_unit_interval, help="Adam beta1 (default 0.5)")
    a("--beta2", type=_unit_interval, help="Adam beta2 (default 0.999)")
    a("--g-lr", type=_positive(float, 1e-12), help="G's learning rate (default: --lr)")
    a(
        "--d-lr",
        type=_positive(float, 1e-12),
        help="D's learning rate (default: --lr); "
        "e.g. --g-lr 1e-4 --d-lr 4e-4 for two time-scale updates (TTUR)",
    )
    a("--ema-decay", type=_unit_interval, help="EMA of G's weights, 0 = off (dcgan 0.999, mlp 0)")
    a(
        "--g-cond",
        choices=G_CONDITIONINGS,
        help="how a conditional dcgan G sees the label: "
        "embedding concatenated to z, or class-conditional BatchNorm "
        f"(default {d.g_cond})",
    )
    a(
        "--upsample",
        choices=UPSAMPLINGS,
        help="dcgan G's upsampling: transposed 4×4 convs, "
        f"or nearest-neighbour upsampling + 3×3 conv (default {d.upsample})",
    )
    a("--spectral-norm", action="store_true", help="spectral normalisation on every D layer")
    a(
        "--diffaugment",
        type=_augmentations,
        metavar="POLICIES",
        help=f"DiffAugment policies for every D input, comma-separated from "
        f"{','.join(AUGMENTATIONS)} (default: none)",
    )
    a(
        "--standing-stats",
        type=_positive(int, 0),
        metavar="PASSES",
        help="re-estimate the sampled G's BatchNorm statistics from PASSES train-mode "
        "batches before sample grids and export, 0 = off (dcgan 200, mlp 0)",
    )
    a(
        "--precision",
        choices=PRECISIONS,
        help="bf16: forward passes under bfloat16 autocast (weights, optimizer and losses "
        "stay fp32; on the CPU with channels-last convolutions). Fast where the CPU has "
        f"bf16 instructions (AMX, AVX512-BF16), slow elsewhere (default {d.precision})",
    )
    a(
        "--reuse-fake",
        action="store_true",
        help="the G step scores the last D step's fake batch again (one G forward fewer "
        "per step, as the DCGAN reference code does) instead of new noise (Algorithm 1)",
    )
    a("--seed", type=_positive(int, 0), help=f"random seed (default {d.seed})")
    a("--device", choices=DEVICES, help=f"auto picks CUDA when available (default {d.device})")
    a("--log-every", type=_positive(int), help=f"steps per metrics line (default {d.log_every})")
    a(
        "--checkpoint-every",
        type=_positive(int),
        help=f"steps between last.pt writes (default {d.checkpoint_every})",
    )
    a("--keep", type=_positive(int), help=f"epoch checkpoints kept (default {d.keep})")
    a("--threads", type=_positive(int), help="torch CPU threads (default: torch's choice)")
    a(
        "--resume",
        action="store_true",
        help="continue RUN from checkpoints/last.pt (with no "
        "checkpoint yet: start it over, keeping files a run does not write)",
    )
    a(
        "--resume-from",
        type=Path,
        metavar="CHECKPOINT",
        help="continue RUN from this "
        "checkpoint, e.g. RUN/checkpoints/epoch-0003.pt when last.pt is damaged",
    )
    a("--overwrite", action="store_true", help="replace an existing run in RUN")
    a("--dry-run", action="store_true", help="print the resolved config and exit")
    return p


def train_main(argv: list[str] | None = None) -> int:
    parser = train_parser()
    require_train_extra(parser.prog, "training")
    from training.monitoring import done_line
    from training.restarts import saved_config
    from training.train import TrainingError, train

    given = vars(parser.parse_args(argv))  # only the flags on the command line (SUPPRESS)
    resume, overwrite, dry_run = (
        bool(given.pop(k, False)) for k in ("resume", "overwrite", "dry_run")
    )
    resume_from: Path | None = given.pop("resume_from", None)
    resume = resume or resume_from is not None
    if resume and overwrite:
        fail(parser.prog, "--resume and --overwrite contradict each other; pick one")
    try:
        config = TrainConfig(**given)
        if resume:  # the saved run's options, with those given here on top
            saved = saved_config(Path(config.out), resume_from)
            if saved is not None:
                config = dataclasses.replace(saved, **given)
        if dry_run:
            print(json.dumps(config.resolve().to_dict(), indent=2))
            return 0
        result = train(config, resume=resume, overwrite=overwrite, resume_from=resume_from)
    except (TrainingError, DataError) as error:
        fail(parser.prog, str(error))
    if result.interrupted:
        print(
            f"interrupted at step {result.step}; checkpoint written. Resume with:\n"
            f"  gan-train --out {result.run_dir} --resume",
            file=sys.stderr,
        )
    else:
        print(
            done_line(result.step, result.epoch, result.batch_in_epoch, result.run_dir),
            file=sys.stderr,
        )
    return 0


def export_main(argv: list[str] | None = None) -> int:
    require_train_extra("gan-export", "export")
    from training.export import main

    return main(argv)


if __name__ == "__main__":
    raise SystemExit(train_main())
