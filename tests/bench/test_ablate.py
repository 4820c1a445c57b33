"""The ablation's table: one row per finished lever, in order, pending ones named, written
between its page's markers with the prose around them left as it was."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from bench.ablate import BEGIN, END, LEVERS, SUITES, write_table

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]


def _result(name: str, flags: list[str], fcd: float) -> dict[str, object]:
    return {
        "lever": name,
        "flags": " ".join(flags),
        "fcd": fcd,
        "coverage": 0.1,
        "recall": 0.01,
        "c2st": 0.96,
        "label_accuracy": 0.78,
        "train_wall_s": 600.0,
        "onnx_images_per_s": 10000,
        "onnx_bytes": 2_000_000,
        "load_average_1min": [3.0, 2.5],
    }


def _args(out: Path, table: Path) -> argparse.Namespace:
    return argparse.Namespace(out=out, epochs=2, seed=0, threads=2, n=10000, table=table)


def test_the_table_lists_finished_levers_in_order_and_names_the_pending_ones(
    tmp_path: Path,
) -> None:
    for index, name in enumerate(["hinge", "baseline"]):
        result = _result(name, LEVERS[name], 250.0 + index)
        (tmp_path / f"{name}.result.json").write_text(json.dumps(result))
    table = tmp_path / "table.md"
    write_table(_args(tmp_path, table), SUITES["recipe"], "python -m bench ablate")
    rows = [line for line in table.read_text().splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| baseline | `(none)` | 251.0 |")
    assert rows[2].startswith("| hinge | `--loss hinge` | 250.0 |")
    assert rows[2].endswith("| 10.0 min | 10,000 | 2.00 MB | 3.0 → 2.5 |")
    assert "Not run yet: standing-stats, raw-g, cbn" in table.read_text()


def test_the_speed_suite_runs_the_shipped_recipe_and_goes_to_its_own_page(tmp_path: Path) -> None:
    suite = SUITES["speed"]
    result = {**_result("bf16", suite.levers["bf16"], 100.0), "onnx_images_per_s": 1500}
    (tmp_path / "bf16.result.json").write_text(json.dumps(result))
    table = tmp_path / "speed.md"
    write_table(_args(tmp_path, table), suite, "python -m bench ablate --suite speed")
    text = table.read_text()
    assert text.startswith("# Training-speed ablation")
    assert "`gan-train --arch dcgan --conditional --g-width 128 LEVER --epochs 2" in text
    assert "| bf16 | `--precision bf16` | 100.0 |" in text
    assert "Not run yet: fp32, reuse-fake, bf16-reuse-fake." in text
    assert suite.table == Path("docs/training-speed-ablation.md")


def test_a_new_table_replaces_only_the_part_between_the_pages_markers(tmp_path: Path) -> None:
    suite = SUITES["recipe"]
    page = tmp_path / "quality-ablation.md"
    shutil.copy(REPO / suite.table, page)
    before, after = page.read_text().split(BEGIN)[0], page.read_text().split(END)[1]
    (tmp_path / "hinge.result.json").write_text(json.dumps(_result("hinge", LEVERS["hinge"], 1)))
    write_table(_args(tmp_path, page), suite, "python -m bench ablate")
    text = page.read_text()
    assert text.startswith(before + BEGIN) and text.endswith(END + after)
    assert "**The chosen recipe**" in before  # the page's own prose, kept
    assert "| hinge | `--loss hinge` | 1.0 |" in text
    assert "| baseline |" not in text
