"""The ablation driver's table: one row per finished lever, in order, pending ones named."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.ablate import LEVERS, SUITES, write_table


def test_the_table_lists_finished_levers_in_order_and_names_the_pending_ones(
    tmp_path: Path,
) -> None:
    for index, name in enumerate(["hinge", "baseline"]):
        result = {
            "lever": name,
            "flags": " ".join(LEVERS[name]),
            "fcd": 250.0 + index,
            "coverage": 0.1,
            "recall": 0.01,
            "c2st": 0.96,
            "label_accuracy": 0.78,
            "train_wall_s": 600.0,
            "onnx_images_per_s": 10000,
            "onnx_bytes": 2_000_000,
            "load_average_1min": [3.0, 2.5],
        }
        (tmp_path / f"{name}.result.json").write_text(json.dumps(result))
    table = tmp_path / "table.md"
    args = argparse.Namespace(out=tmp_path, epochs=2, seed=0, threads=2, n=10000, table=table)
    write_table(args, SUITES["recipe"], "python -m training.ablate")
    rows = [line for line in table.read_text().splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| baseline | `(none)` | 251.0 |")
    assert rows[2].startswith("| hinge | `--loss hinge` | 250.0 |")
    assert rows[2].endswith("| 10.0 min | 10,000 | 2.00 MB | 3.0 → 2.5 |")
    assert "Not run yet: standing-stats, raw-g, cbn" in table.read_text()


def test_the_speed_suite_runs_the_shipped_recipe_and_goes_to_its_own_page(tmp_path: Path) -> None:
    suite = SUITES["speed"]
    result = {
        "lever": "bf16",
        "flags": " ".join(suite.levers["bf16"]),
        "fcd": 100.0,
        "coverage": 0.5,
        "recall": 0.2,
        "c2st": 0.8,
        "label_accuracy": 0.9,
        "train_wall_s": 120.0,
        "onnx_images_per_s": 1500,
        "onnx_bytes": 9_700_000,
        "load_average_1min": [0.2, 1.9],
    }
    (tmp_path / "bf16.result.json").write_text(json.dumps(result))
    table = tmp_path / "speed.md"
    args = argparse.Namespace(out=tmp_path, epochs=2, seed=0, threads=2, n=10000, table=table)
    write_table(args, suite, "python -m training.ablate --suite speed")
    text = table.read_text()
    assert text.startswith("# Training-speed ablation")
    assert "`gan-train --arch dcgan --conditional --g-width 128 LEVER --epochs 2" in text
    assert "| bf16 | `--precision bf16` | 100.0 |" in text
    assert "Not run yet: fp32, reuse-fake, bf16-reuse-fake." in text
    assert suite.table == Path("docs/training-speed-ablation.md")
