"""What a run writes for people to watch: metrics.jsonl, sample grids, the curves plot."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.contract import grid, to_uint8


class MetricsLog:
    """Append-only JSON lines; each line is flushed so a crashed run keeps its history."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def truncate_after(self, step: int) -> None:
        """Drop records past `step`: a resumed run rewrites them instead of duplicating."""
        kept = [r for r in self.read() if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def step_statistics(
    d_loss: torch.Tensor, g_loss: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """(D loss, G loss, mean D(x), mean D(G(z))) of one step, left on the training device."""
    return torch.stack(
        [
            d_loss.detach(),
            g_loss.detach(),
            torch.sigmoid(real_logits.detach()).mean(),
            torch.sigmoid(fake_logits.detach()).mean(),
        ]
    )  # (4,)


class LogWindow:
    """Running means over a logging window. The sums stay on the training device, so the
    only host sync is the one read per flush, not one per step."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(4)
        self.count = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, statistics: torch.Tensor, images: int) -> None:
        self.sums = self.sums.to(statistics.device) + statistics  # a copy only after reset
        self.count += 1
        self.images += images

    def flush(self, epoch: int, step: int, kind: str = "step") -> dict[str, Any]:
        means = (self.sums / max(1, self.count)).tolist()
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        record = {
            "kind": kind,
            "epoch": epoch,
            "step": step,
            "d_loss": means[0],
            "g_loss": means[1],
            "d_real": means[2],
            "d_fake": means[3],
            "images_per_s": self.images / elapsed,
        }
        self.reset()
        return record


def progress_postfix(record: dict[str, Any]) -> str:
    """The progress bar's summary of one log record."""
    return (
        f"D {record['d_loss']:.3f} G {record['g_loss']:.3f} D(x) {record['d_real']:.2f} "
        f"D(G(z)) {record['d_fake']:.2f} {record['images_per_s']:.0f} img/s"
    )


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1: "1 step", "0 steps", "2 full epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def done_line(steps: int, full_epochs: int, steps_in_epoch: int, run_dir: Path) -> str:
    """The last line of a run that was not interrupted."""
    return (
        f"done: {counted(steps, 'step')} ({counted(full_epochs, 'full epoch')} + "
        f"{counted(steps_in_epoch, 'step')}) in {run_dir}"
    )


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """``(N, C, H, W)`` floats in [-1, 1] → one uint8 ``(rows·H, columns·W[, C])`` grid: the
    contract's pixels and layout (`core.contract`), as the service's PNG grids."""
    canvas = grid(to_uint8(images), columns)  # (C, H', W')
    return canvas[0] if canvas.shape[0] == 1 else canvas.transpose(1, 2, 0)


def save_grid(images: np.ndarray, columns: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, columns)).save(path)


def plot_curves(records: list[dict[str, Any]], path: Path) -> None:
    """Losses and mean D outputs against generator steps; D = 1/2 is the paper's equilibrium."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    steps = [r for r in records if r.get("kind") == "step"]
    if not steps:
        return
    x = [r["step"] for r in steps]
    figure, (losses, outputs) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    losses.plot(x, [r["d_loss"] for r in steps], label="D loss")
    losses.plot(x, [r["g_loss"] for r in steps], label="G loss")
    losses.set_ylabel("loss")
    losses.legend()
    outputs.plot(x, [r["d_real"] for r in steps], label="mean D(x)")
    outputs.plot(x, [r["d_fake"] for r in steps], label="mean D(G(z))")
    outputs.axhline(0.5, color="grey", linestyle="--", linewidth=0.8, label="equilibrium 1/2")
    outputs.set_ylim(0, 1)
    outputs.set_xlabel("generator step")
    outputs.set_ylabel("D output")
    outputs.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
