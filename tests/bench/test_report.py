"""The serve-compare report: every committed result renders again, the ones the present
report wrote byte for byte, and each target row is judged by its rule and threshold."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import report, targets
from bench.results import Run

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "bench-results"
JSONS = sorted(
    path
    for path in RESULTS.glob("*.json")
    if path.stem.startswith(("serve-compare-", "disconnects-"))
)
# Written by this report as it stands; the older ones by earlier versions of it (before the
# side-by-side parts and the disconnect trials), which laid some sections out otherwise.
SAME_REPORT = [
    "serve-compare-2026-11-28-side-by-side",
    "disconnects-2026-11-28-max-run-ms-0",
    "disconnects-2026-11-28-max-run-ms-50",
]


def _result(stem: str) -> dict[str, Any]:
    return dict(json.loads((RESULTS / f"{stem}.json").read_text()))


@pytest.mark.parametrize("stem", SAME_REPORT)
def test_a_committed_result_renders_as_its_committed_markdown(stem: str) -> None:
    committed = (RESULTS / f"{stem}.md").read_text()
    # The one line changed since: the targets heading named the tracker they came from.
    committed = re.sub(r"^### Targets \(.*\)$", "### Targets", committed, flags=re.MULTILINE)
    assert report.markdown(_result(stem)) == committed


@pytest.mark.parametrize("path", JSONS, ids=lambda path: path.stem)
def test_every_committed_result_renders_with_its_targets(path: Path) -> None:
    text = report.markdown(json.loads(path.read_text()))
    rows = text.split("### Targets\n\n| target | measured | |\n|---|---|---|\n")[1]
    assert rows and all(
        line.endswith(("| pass |", "| **FAIL** |", "| n/a |")) for line in rows.splitlines()
    )


def _rows(result: dict[str, Any]) -> dict[str, str]:
    """target name → verdict."""
    run = Run.of(result)
    return {
        t.name: t.verdict(run, reading)
        for t in targets.TARGETS
        if (reading := t.read(run)) is not None
    }


def test_a_p99_worse_than_the_peers_fails_the_c32_target_whatever_the_ratio() -> None:
    result = _result("serve-compare-2026-11-28-side-by-side")
    name = "c = 32: ≥ 1.5× best peer with p99 no worse"
    c32 = next(v for v in result["versus"] if v["connections"] == 32)
    c32["ratio"] = 2.0
    assert _rows(result)[name] == "pass"
    c32["p99_ms"]["gan-serve"] = c32["p99_ms"]["fastapi"] + 1
    assert _rows(result)[name] == "**FAIL**"


def test_a_part_that_failed_or_did_not_run_has_no_target_rows() -> None:
    result = _result("serve-compare-2026-11-28-side-by-side")
    everything = _rows(result)
    broken = copy.deepcopy(result)
    broken["overload"] = {"error": "RuntimeError: gone"}
    del broken["limit"]
    left = _rows(broken)
    assert set(everything) - set(left) == {
        "c = 32: ≥ 0.6× limit",
        "c = 1: p50 ≤ in-process + 1 ms",
        "overload goodput ≥ 0.8× capacity",
        "overload accepted p99 ≤ deadline",
        "overload 503 p99 ≤ 50 ms",
        "/healthz p99 ≤ 50 ms",
    }
    assert "### overload: failed: RuntimeError: gone" in report.markdown(broken)


def test_a_figure_that_was_not_measured_is_not_applicable() -> None:
    result = _result("serve-compare-2026-11-28-side-by-side")
    result["burst"]["rss_mb"]["after"] = None
    assert _rows(result)["burst: RSS back within 50 MB"] == "n/a"
