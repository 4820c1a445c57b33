"""Command lines of the training package: gan-train, gan-export, gan-evaluate.

Every user error ends as one line on stderr and exit code 2; `main(argv)` functions take
an argument list so tests call them in-process. ``python -m training.cli`` is gan-train
(which is what ``torchrun -m training.cli`` runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from training.config import DEVICES, LOSSES, TrainConfig
from training.data import DATASETS, DataError
from training.models import ARCHS


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as a single line (no usage dump), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str) -> NoReturn:
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise SystemExit(2)


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


def train_parser() -> OneLineParser:
    d = TrainConfig()
    p = OneLineParser(
        prog="gan-train",
        description="Train a GAN (Goodfellow et al. 2014, Algorithm 1) and write a run directory.",
        argument_default=argparse.SUPPRESS,  # so we know which flags were given (resume)
    )
    a = p.add_argument
    a("--out", metavar="RUN", help=f"run directory (default {d.out})")
    a("--dataset", choices=DATASETS, help=f"training data (default {d.dataset})")
    a("--data-dir", help="directory of idx files (default $GAN_DATA_DIR, else "
      "/usr/share/datasets/fashion-mnist for fashion-mnist)")
    a("--arch", choices=ARCHS, help=f"model family (default {d.arch})")
    a("--conditional", action="store_true", help="class-conditional G and projection D")
    a("--latent-dim", type=_positive(int), help=f"size of z (default {d.latent_dim})")
    a("--g-width", type=_positive(int), help="generator width (mlp 256, dcgan 32)")
    a("--d-width", type=_positive(int), help="discriminator width (mlp 256, dcgan 32)")
    a("--loss", choices=LOSSES, help=f"generator objective (default {d.loss})")
    a("--d-steps", type=_positive(int), help="discriminator steps k per generator step "
      f"(default {d.d_steps})")
    a("--epochs", type=_positive(int), help=f"passes over the data (default {d.epochs})")
    a("--max-steps", type=_positive(int), help="stop after this many generator steps")
    a("--batch-size", type=_positive(int), help="minibatch size m (mlp 100, dcgan 128)")
    a("--lr", type=_positive(float, 1e-12), help="Adam learning rate (default 2e-4)")
    a("--beta1", type=_unit_interval, help="Adam beta1 (default 0.5)")
    a("--beta2", type=_unit_interval, help="Adam beta2 (default 0.999)")
    a("--ema-decay", type=_unit_interval, help="EMA of G's weights, 0 = off "
      "(dcgan 0.999, mlp 0)")
    a("--seed", type=_positive(int, 0), help=f"random seed (default {d.seed})")
    a("--device", choices=DEVICES, help=f"auto picks CUDA when available (default {d.device})")
    a("--log-every", type=_positive(int), help=f"steps per metrics line (default {d.log_every})")
    a("--checkpoint-every", type=_positive(int),
      help=f"steps between last.pt writes (default {d.checkpoint_every})")
    a("--keep", type=_positive(int), help=f"epoch checkpoints kept (default {d.keep})")
    a("--threads", type=_positive(int), help="torch CPU threads (default: torch's choice)")
    a("--resume", action="store_true", help="continue RUN from checkpoints/last.pt")
    a("--overwrite", action="store_true", help="replace an existing run in RUN")
    a("--dry-run", action="store_true", help="print the resolved config and exit")
    return p


def train_main(argv: list[str] | None = None) -> int:
    from training.train import TrainingError, resolve_config, train

    parser = train_parser()
    args = vars(parser.parse_args(argv))
    resume, overwrite, dry_run = (bool(args.pop(k, False)) for k in
                                  ("resume", "overwrite", "dry_run"))
    if resume and overwrite:
        fail(parser.prog, "--resume and --overwrite contradict each other; pick one")
    config = TrainConfig(**args)
    explicit = set(args)
    try:
        if dry_run:
            resolved, _ = resolve_config(config, explicit, resume)
            print(json.dumps(resolved.to_dict(), indent=2))
            return 0
        result = train(config, explicit, resume=resume, overwrite=overwrite)
    except (TrainingError, DataError) as error:
        fail(parser.prog, str(error))
    if result.interrupted:
        print(f"interrupted at step {result.step}; checkpoint written. Resume with:\n"
              f"  gan-train --out {result.run_dir} --resume", file=sys.stderr)
    else:
        print(f"done: {result.step} steps, {result.epoch} epochs in {result.run_dir}",
              file=sys.stderr)
    return 0


def export_main(argv: list[str] | None = None) -> int:
    from training.export import main

    return main(argv)


def evaluate_main(argv: list[str] | None = None) -> int:
    from training.evaluate import main

    return main(argv)


if __name__ == "__main__":
    raise SystemExit(train_main())
