"""How `gan-evaluate` shows its results: the stdout table (also the model cards' table,
`evaluation.card`) and the labelled sample grid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.contract import to_uint8

ROW_ORDER = ("model", "real", "untrained")
ROW_TITLES = {"model": "model", "real": "real vs real", "untrained": "untrained"}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "YES" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not np.isfinite(value):
        return "nan"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}f}" if magnitude < 10 else f"{value:.{max(digits - 2, 1)}f}"


Getter = Callable[[dict[str, Any]], Any]


def metric_rows(settings: dict[str, Any]) -> list[tuple[str, str, Getter]]:
    """(label, how to read it, getter) of each table line. The k in the labels is the one the
    report ran with (its `settings`, which echo `evaluation.metrics.METRICS`)."""
    k_pr, k_dc = settings["k_precision_recall"], settings["k_density_coverage"]
    return [
        ("FCD", "↓", lambda r: r["fcd"]),
        ("KID x1000", "↓", lambda r: r["kid"]["mean"] * 1000),
        ("IS analogue", "↑ ≤K", lambda r: r["inception_score"]["mean"]),
        (f"precision k={k_pr}", "↑", lambda r: r["precision"]),
        (f"recall k={k_pr}", "↑", lambda r: r["recall"]),
        (f"density k={k_dc}", "≈1", lambda r: r["density"]),
        (f"coverage k={k_dc}", "↑", lambda r: r["coverage"]),
        ("classes covered", "↑ =K", lambda r: r["class_histogram"]["classes_covered"]),
        ("largest class share", "≈1/K", lambda r: r["class_histogram"]["largest_share"]),
        ("KL to uniform (nats)", "↓", lambda r: r["class_histogram"]["kl_to_uniform"]),
        ("mode collapse flag", "no", lambda r: r["class_histogram"]["collapse"]),
        ("label accuracy", "↑", lambda r: r["label_accuracy"]),
        ("C2ST accuracy", "→0.5", lambda r: r["c2st"]["accuracy"]),
        ("Parzen log-lik (nats)", "↑", lambda r: r["parzen"]["mean"]),
        ("  ± standard error", "", lambda r: r["parzen"]["stderr"]),
        ("  Parzen sigma", "", lambda r: r["parzen"]["sigma"]),
        ("memorised share", "≈real", lambda r: r["memorisation"]["share_closer"]),
    ]


def render_table(report: dict[str, Any]) -> str:
    """The header lines, the metric table and (conditional models) the per-class table."""
    return "\n".join([*render_header(report), "", *render_metrics(report)])


def render_header(report: dict[str, Any]) -> list[str]:
    """What was scored, with which evaluator, in how much time."""
    model, evaluator = report["model"], report["evaluator"]
    settings = report["settings"]
    kind = "conditional" if model["conditional"] else "unconditional"
    return [
        f"{model['name']} ({model['arch'] or '?'}, {kind}) on {report['dataset']['name']}: "
        f"n={settings['n']}, seed={settings['seed']}, "
        f"real row {report['dataset']['real_samples']} held-out training images",
        f"evaluator sha256 {evaluator['sha256'][:16]}… (test accuracy "
        f"{_fmt(evaluator['test_accuracy'], 4)}); wall time {report['wall_seconds']:.0f} s, "
        f"CPU time {report['cpu_seconds']:.0f} s",
    ]


def render_metrics(report: dict[str, Any]) -> list[str]:
    """The metric table, and the per-class table when the rows have per-class FCD."""
    rows = report["rows"]
    names = [name for name in ROW_ORDER if name in rows]
    lines: list[str] = []
    header = ["metric", "read"] + [ROW_TITLES[n] for n in names]
    table = [header]
    for label, read, get in metric_rows(report["settings"]):
        try:
            values = [_fmt(get(rows[n])) for n in names]
        except (TypeError, KeyError):
            values = ["—" for _ in names]
        table.append([label, read, *values])
    lines += _align(table)
    per_class = [rows[n].get("fcd_per_class") for n in names]
    if any(v is not None for v in per_class):
        lines.append("")
        class_names = report["dataset"]["class_names"]
        head = ["class", "label acc"] + [f"FCD {ROW_TITLES[n]}" for n in names]
        body = [head]
        accuracy = rows["model"]["label_accuracy_per_class"] or [None] * len(class_names)
        for c, name in enumerate(class_names):
            body.append(
                [name, _fmt(accuracy[c])]
                + [_fmt(v[c]) if v is not None else "—" for v in per_class]
            )
        lines += _align(body)
    return lines


def _align(table: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out = []
    for j, row in enumerate(table):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def render_grid(
    images: np.ndarray,
    groups: np.ndarray,
    by_request: bool,
    class_names: list[str],
    name: str,
    path: Path,
    per_row: int = 10,
    scale: int = 2,
) -> None:
    """One row per class, `per_row` samples each, the class name on the left. `groups` is
    the requested class (conditional models, `by_request`) or the class the evaluator assigns
    (unconditional ones: an empty or crowded row is mode collapse you can see)."""
    num_classes = len(class_names)
    counts = np.bincount(groups, minlength=num_classes)
    title = "rows: requested class" if by_request else "rows: class the evaluator assigns"
    tile = images.shape[-1] * scale
    pad, label_width, top = 2, 130, 18
    width = label_width + per_row * (tile + pad) + pad
    height = top + num_classes * (tile + pad) + pad
    canvas = Image.new("L", (width, height), color=255)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((4, 3), f"{name}: {title}", fill=0, font=font)
    for c in range(num_classes):
        y = top + c * (tile + pad) + pad
        text = class_names[c] if by_request else f"{class_names[c]} ({counts[c] / len(groups):.0%})"
        draw.text((4, y + tile // 2 - 6), text[:20], fill=0, font=font)
        for j, index in enumerate(np.flatnonzero(groups == c)[:per_row]):
            pixels = to_uint8(images[index, 0])
            img = Image.fromarray(pixels).resize((tile, tile), Image.Resampling.NEAREST)
            canvas.paste(img, (label_width + j * (tile + pad) + pad, y))
    canvas.save(path)
