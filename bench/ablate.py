"""Training ablations: a base recipe, then each lever added to it alone, scored by gan-evaluate.

    python -m bench ablate --out runs/ablation --epochs 2 --threads 2 --n 10000
    python -m bench ablate --suite speed --out runs/ablation-speed --epochs 2

Every run on the same seed and the same short budget, through the console scripts of this
environment: gan-train, then gan-export, then gan-evaluate (no training code is imported).
Two suites: `recipe` (what a lever does to quality, on the narrow pre-ablation recipe; the
table goes to docs/quality-ablation.md) and `speed` (the shipped recipe and its
training-speed levers: what each does to steps per second, and whether a step still learns
as much; docs/training-speed-ablation.md). Only the part of the page between its two
markers is written (`BEGIN`, `END`): the prose around the table is the page's own.

Runs one process at a time (never two trainings side by side). A run whose result exists is
not repeated, so the command continues an interrupted ablation. Each step's output goes to
OUT/NAME.log.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

# The recipe as it stood before the ablation; standing statistics, which the ablation
# turned on by default, stay off here so every row compares with the same baseline.
BASELINE = ["--arch", "dcgan", "--conditional", "--standing-stats", "0"]

# name → the flags added to the baseline (one lever each), in the order they run: the
# likeliest wins first, the most expensive (spectral norm, a 4× wider G) last.
LEVERS: dict[str, list[str]] = {
    "baseline": [],
    "hinge": ["--loss", "hinge"],
    "standing-stats": ["--standing-stats", "200"],
    "raw-g": ["(gan-export --no-ema)"],
    "cbn": ["--g-cond", "cbn"],
    "ttur": ["--g-lr", "1e-4", "--d-lr", "4e-4"],
    "nearest": ["--upsample", "nearest"],
    "diffaugment": ["--diffaugment", "translation,cutout"],
    "betas-0-0.9": ["--beta1", "0", "--beta2", "0.9"],
    "spectral-norm": ["--spectral-norm"],
    "wide-g": ["--g-width", "128"],
}

# The shipped default's recipe (models/fashion-cdcgan.md) and the two speed levers of
# gan-train, alone and together.
SPEED_BASELINE = ["--arch", "dcgan", "--conditional", "--g-width", "128"]
SPEED_LEVERS: dict[str, list[str]] = {
    "fp32": [],
    "bf16": ["--precision", "bf16"],
    "reuse-fake": ["--reuse-fake"],
    "bf16-reuse-fake": ["--precision", "bf16", "--reuse-fake"],
}

# Standing statistics change only what is sampled after training (the test
# test_standing_statistics_change_the_export_but_not_the_training shows the weights are
# bit-identical), so that lever reuses the baseline's training with the option set.
REUSES_TRAINING: dict[str, tuple[str, dict[str, Any]]] = {
    "standing-stats": ("baseline", {"standing_stats": 200}),
    "raw-g": ("baseline", {}),
}
# The baseline's raw generator instead of its EMA copy: how much the EMA lags at this budget.
EXPORT_FLAGS = {"raw-g": ["--no-ema"]}


@dataclass(frozen=True)
class Suite:
    """One ablation: a base command line, its levers and the page its table goes to."""

    heading: str  # the page's title, for a page that does not exist yet
    baseline: list[str]
    levers: dict[str, list[str]]
    table: Path


SUITES = {
    "recipe": Suite(
        "Quality ablation: the default recipe and each lever alone",
        BASELINE,
        LEVERS,
        Path("docs/quality-ablation.md"),
    ),
    "speed": Suite(
        "Training-speed ablation: the wide-G recipe, bf16 and a reused fake batch",
        SPEED_BASELINE,
        SPEED_LEVERS,
        Path("docs/training-speed-ablation.md"),
    ),
}
# The page's generated part lies between these lines; everything else on it is written by hand.
BEGIN = "<!-- begin: written by `python -m bench ablate`; edit the prose around it -->"
END = "<!-- end: written by `python -m bench ablate` -->"


def _tool(name: str) -> list[str]:
    """A console script of this environment (the one beside this Python)."""
    return [str(Path(sys.executable).with_name(name))]


def _run(command: list[str], log: Path) -> float:
    """Run `command`, appending its output to `log`; returns wall seconds."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {shlex.join(command)}\n")
        handle.flush()
        started = time.perf_counter()
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=True)
        return time.perf_counter() - started


def onnx_images_per_s(path: Path, threads: int, batch: int = 256, repeats: int = 10) -> float:
    """Median images/s of onnxruntime (CPU) generating `batch` images per call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name: i for i in session.get_inputs()}
    latent = int(names["z"].shape[1])
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {"z": rng.standard_normal((batch, latent), np.float32)}
    if "label" in names:
        feeds["label"] = rng.integers(0, 10, batch).astype(np.int64)
    session.run(["image"], feeds)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(["image"], feeds)
        times.append(time.perf_counter() - started)
    return batch / float(np.median(times))


def ablate_one(name: str, suite: Suite, args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    run, log, model = out / name, out / f"{name}.log", out / f"{name}.onnx"
    report_path = out / f"{name}.report.json"
    result_path = out / f"{name}.result.json"
    if result_path.exists():
        return dict(json.loads(result_path.read_text()))
    train = [
        *_tool("gan-train"),
        *suite.baseline,
        *suite.levers[name],
        "--epochs",
        str(args.epochs),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
        "--out",
        str(run),
        "--overwrite",
    ]
    if args.data_dir:
        train += ["--data-dir", args.data_dir]
    trained, timing_path = run, out / f"{name}.train.json"
    if name in REUSES_TRAINING:
        source, options = REUSES_TRAINING[name]
        _reuse_training(out / source, run, options)
        trained, timing_path = out / source, out / f"{source}.train.json"
    elif not (run / "checkpoints" / f"epoch-{args.epochs:04d}.pt").is_file():
        load_before = os.getloadavg()
        train_s = _run(train, log)
        timing: dict[str, Any] = {
            "train_wall_s": train_s,
            "load": [load_before[0], os.getloadavg()[0]],
        }
        timing_path.write_text(json.dumps(timing) + "\n")
    timing = _training_timing(trained, timing_path)  # measured now or earlier
    export = [*_tool("gan-export"), str(run), "--out", str(model), "--name", f"ablation-{name}"]
    _run(export + EXPORT_FLAGS.get(name, []), log)
    evaluate = [
        *_tool("gan-evaluate"),
        str(model),
        "--n",
        str(args.n),
        "--threads",
        str(args.threads),
        "--no-untrained",
        "--out",
        str(report_path),
    ]
    if args.data_dir:
        evaluate += ["--data-dir", args.data_dir]
    evaluate_s = _run(evaluate, log)
    row = json.loads(report_path.read_text())["rows"]["model"]
    result = {
        "lever": name,
        "flags": " ".join(suite.levers[name]),
        "fcd": row["fcd"],
        "coverage": row["coverage"],
        "recall": row["recall"],
        "c2st": row["c2st"]["accuracy"],
        "label_accuracy": row.get("label_accuracy"),
        "train_wall_s": round(timing["train_wall_s"], 1),
        "evaluate_wall_s": round(evaluate_s, 1),
        "onnx_images_per_s": round(onnx_images_per_s(model, args.threads)),
        "onnx_bytes": model.stat().st_size,
        "load_average_1min": [round(value, 2) for value in timing["load"]],
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _reuse_training(source: Path, run: Path, options: dict[str, Any]) -> None:
    """`run` as a copy of `source`'s final checkpoint with `options` set in its config."""
    import torch

    state = torch.load(source / "checkpoints" / "last.pt", weights_only=False)
    state["config"].update(options)
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(state, run / "checkpoints" / "last.pt")


def _training_timing(run: Path, timing_path: Path) -> dict[str, Any]:
    """The training's wall time and load averages as measured; for a run trained before
    they were recorded, the time from its config.json to its last checkpoint."""
    if timing_path.is_file():
        return dict(json.loads(timing_path.read_text()))
    started = (run / "config.json").stat().st_mtime
    ended = (run / "checkpoints" / "last.pt").stat().st_mtime
    return {"train_wall_s": ended - started, "load": [float("nan"), float("nan")]}


def _load(pair: list[float]) -> str:
    return "not recorded" if any(v != v for v in pair) else f"{pair[0]} → {pair[1]}"


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_table(args: argparse.Namespace, suite: Suite, command: str) -> None:
    """The table of every finished run in OUT, in the suite's order, written between the
    page's markers (a page without them gets them at its end)."""
    page = args.table or suite.table
    text = page.read_text() if page.is_file() else f"# {suite.heading}\n\n"
    block = "\n".join([BEGIN, *_table_lines(args, suite, command), END])
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        text = before + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.write_text(text)


def _table_lines(args: argparse.Namespace, suite: Suite, command: str) -> list[str]:
    results = [
        json.loads((args.out / f"{name}.result.json").read_text())
        for name in suite.levers
        if (args.out / f"{name}.result.json").is_file()
    ]
    lines = [
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Every run: `gan-train {' '.join(suite.baseline)} LEVER --epochs {args.epochs} "
        f"--seed {args.seed} --threads {args.threads}` on Fashion-MNIST, exported with "
        f"`gan-export` (EMA weights), scored by `gan-evaluate --n {args.n}` (seed 0, against "
        "the 10k test split). Lower FCD and C2ST (0.5 = indistinguishable) are better; "
        "higher coverage, recall and label accuracy are better. images/s: onnxruntime on "
        f"the CPU, batch 256, {args.threads} threads, median of 10 calls.",
        "",
        "| lever | flags | FCD ↓ | coverage ↑ | recall ↑ | C2ST ↓ | label acc. ↑ | "
        "train wall | ONNX images/s | ONNX size | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['lever']} | `{r['flags'] or '(none)'}` | {_fmt(r['fcd'], 1)} | "
            f"{_fmt(r['coverage'])} | {_fmt(r['recall'])} | {_fmt(r['c2st'])} | "
            f"{_fmt(r['label_accuracy'])} | {r['train_wall_s'] / 60:.1f} min | "
            f"{r['onnx_images_per_s']:,} | {r['onnx_bytes'] / 1e6:.2f} MB | "
            f"{_load(r['load_average_1min'])} |"
        )
    notes = [f"- {r['lever']}: {r['note']}" for r in results if r.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    pending = [name for name in suite.levers if name not in {r["lever"] for r in results}]
    if pending:
        lines += ["", f"Not run yet: {', '.join(pending)}."]
    return [*lines, "", f"Per-run logs, reports and models: `{_relative(args.out)}/`."]


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/ablation"), help="runs, logs and results"
    )
    parser.add_argument("--epochs", type=int, default=2, help="gan-train epochs per run")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    parser.add_argument("--seed", type=int, default=0, help="gan-train seed of every run")
    parser.add_argument("--n", type=int, default=10000, help="gan-evaluate samples")
    parser.add_argument("--data-dir", default=None, help="data set folder (gan-train's default)")
    parser.add_argument("--suite", choices=list(SUITES), default="recipe", help="which ablation")
    parser.add_argument("--levers", nargs="+", help="run only these (default: the suite's all)")
    parser.add_argument("--table", type=Path, help="where the table goes (default: the suite's)")
    args = parser.parse_args(argv)
    suite = SUITES[args.suite]
    unknown = sorted(set(args.levers or []) - set(suite.levers))
    if unknown:
        parser.error(f"unknown lever(s) {', '.join(unknown)} of suite {args.suite}")
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join([*(prog or "python -m bench ablate").split(), *given])
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.levers or list(suite.levers):
        print(
            f"{datetime.now(UTC):%H:%M:%S} {name}: running (log {args.out}/{name}.log)", flush=True
        )
        try:
            result = ablate_one(name, suite, args)
        except subprocess.CalledProcessError as error:
            print(f"{name}: failed ({error}); see {args.out}/{name}.log", flush=True)
            continue
        write_table(args, suite, command)
        print(f"{datetime.now(UTC):%H:%M:%S} {name}: {result}", flush=True)
    return 0
