"""Retrain the evaluator network (`evaluation.feature_net`): a small Fashion-MNIST CNN whose
features and class probabilities `gan-evaluate` scores generators in (FCD, KID,
precision/recall, IS analogue, label accuracy). This module needs torch; scoring does not.

Scores are only comparable under the same evaluator, so it is trained by a fixed recipe with
a fixed seed, stored as one ONNX file (`evaluation/assets/evaluator.onnx`, outputs `logits`
and the penultimate `features`), and every report carries that file's sha256. Retrain it with

    python -m evaluation.train_feature_net --out evaluation/assets/evaluator.onnx

(4 epochs, about 4.5 minutes on 2 idle CPU cores). The test split is used once, after
training, to report the accuracy stored in the file's metadata; nothing is selected on it.
Training is deterministic for a seed, thread count, torch version and CPU kind, and the
metadata holds nothing run-specific (no times), so a retrain writes the same bytes: the same
sha256, the same scores.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.console import OneLineParser, require
from core.datasets import DATASETS, DataError, load_dataset, to_unit_range
from evaluation.feature_net import DEFAULT_PATH, INPUT, OUTPUTS

if TYPE_CHECKING:  # torch is imported lazily, so `python -m ... --help` works without it
    import torch

FEATURE_DIM = 128
EVALUATOR_FORMAT_VERSION = "1"


def build_network() -> torch.nn.Module:
    """conv(32) → pool → conv(64) → pool → fc(128) = features → fc(10) = logits."""
    from torch import nn

    class EvaluatorNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1, bias=False),  # (B, 32, 28, 28)
                nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.MaxPool2d(2),  # (B, 32, 14, 14)
                nn.Conv2d(32, 64, 3, padding=1, bias=False),  # (B, 64, 14, 14)
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.MaxPool2d(2),  # (B, 64, 7, 7)
                nn.Flatten(),
                nn.Linear(64 * 7 * 7, FEATURE_DIM),
                nn.ReLU(),  # (B, 128): the penultimate features the metrics use
            )
            self.dropout = nn.Dropout(0.3)
            self.head = nn.Linear(FEATURE_DIM, 10)

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.body(image)
            return self.head(self.dropout(features)), features

    return EvaluatorNet()


def train_evaluator(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    *,
    epochs: int = 4,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    threads: int = 2,
    log: bool = True,
) -> torch.nn.Module:
    """Train the evaluator on uint8 images ``(N, 28, 28)``: Adam, one-cycle LR, flips."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_network()
    x_all = torch.from_numpy(to_unit_range(train_images))  # (N, 1, 28, 28) in [-1, 1]
    y_all = torch.from_numpy(train_labels.astype(np.int64))
    steps_per_epoch = (len(x_all) + batch_size - 1) // batch_size
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.25
    )
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(x_all)))
        flips = torch.from_numpy(rng.random(len(x_all)) < 0.5)  # mirror half: clothes are
        total, correct, started = 0.0, 0, time.perf_counter()  # left-right symmetric
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            x = x_all[index]
            flip = flips[index]
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            logits, _ = net(x)
            loss = F.cross_entropy(logits, y_all[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == y_all[index]).sum())
        if log:
            print(
                f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f} "
                f"train acc {correct / len(order):.4f} ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    net.eval()
    return net


def torch_accuracy(net: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        x = torch.from_numpy(to_unit_range(images))
        predictions = torch.cat([net(x[i : i + 1000])[0].argmax(1) for i in range(0, len(x), 1000)])
    return float((predictions.numpy() == labels).mean())


def export_evaluator(net: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write one self-contained ONNX file: `image` → (`logits`, `features`), dynamic batch."""
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 1, 28, 28)
    program = torch.onnx.export(
        net,
        (example,),
        dynamo=True,
        input_names=[INPUT],
        output_names=list(OUTPUTS),
        dynamic_shapes={INPUT: {0: torch.export.Dim("batch")}},
        optimize=True,
        verbose=False,
    )
    assert program is not None
    model = program.model_proto
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save_model(model, str(tmp), save_as_external_data=False)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m evaluation.train_feature_net",
        description="Train the Fashion-MNIST evaluator CNN reproducibly and export it to ONNX.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_PATH, help="ONNX file to write (default: %(default)s)"
    )
    parser.add_argument(
        "--dataset",
        default="fashion-mnist",
        choices=DATASETS,
        help="data set to train on (default: %(default)s)",
    )
    parser.add_argument("--data-dir", default=None, help="directory holding the idx files")
    parser.add_argument("--epochs", type=int, default=4, help="epochs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)"
    )
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=0.0,
        help="exit 1 without writing if test accuracy is lower",
    )
    args = parser.parse_args(argv)
    require(
        parser.prog,
        "retraining the evaluator",
        {"torch": "PyTorch"},
        "pip install -e '.[train]' (CPU machines: see README, \"Training\")",
    )
    if args.epochs < 1 or args.threads < 1:
        parser.error("--epochs and --threads must be at least 1")
    try:
        train = load_dataset(args.dataset, args.data_dir, "train")
        test = load_dataset(args.dataset, args.data_dir, "test")
    except DataError as error:
        parser.error(str(error))

    import torch

    started = time.perf_counter()
    net = train_evaluator(
        train.images, train.labels, epochs=args.epochs, seed=args.seed, threads=args.threads
    )
    seconds = time.perf_counter() - started
    accuracy = torch_accuracy(net, test.images, test.labels)
    print(f"test accuracy {accuracy:.4f}, trained in {seconds:.0f} s", file=sys.stderr)
    if accuracy < args.min_accuracy:
        print(
            f"error: test accuracy {accuracy:.4f} < --min-accuracy {args.min_accuracy}",
            file=sys.stderr,
        )
        return 1
    command = (
        f"python -m evaluation.train_feature_net --dataset {args.dataset} --epochs {args.epochs} "
        f"--seed {args.seed} --threads {args.threads}"
    )
    metadata = {
        "evaluator_format_version": EVALUATOR_FORMAT_VERSION,
        "dataset": args.dataset,
        "train_fingerprint": train.fingerprint(),
        "test_fingerprint": test.fingerprint(),
        "class_names": json.dumps(list(train.class_names)),
        "input": "image float32 [batch, 1, 28, 28] in [-1, 1]",
        "outputs": json.dumps({"logits": [None, 10], "features": [None, FEATURE_DIM]}),
        "test_accuracy": f"{accuracy:.4f}",
        "epochs": str(args.epochs),
        "seed": str(args.seed),
        "threads": str(args.threads),
        "command": command,
        "torch_version": torch.__version__,
        "hardware": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    export_evaluator(net, args.out, metadata)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} (sha256 {digest})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
