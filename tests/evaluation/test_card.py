"""`python -m evaluation.card`: a model card's evaluation block is rebuilt from its report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evaluation.card import main, regenerate
from evaluation.render import render_metrics

REPO = Path(__file__).resolve().parents[2]
MARKER = (
    "<!-- evaluation table: generated from m/report.json by `python -m evaluation.card`; "
    "do not edit -->\n"
)
END = "<!-- end of evaluation table -->\n"


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """A card with a stale block, next to a copy of a shipped report."""
    (tmp_path / "m").mkdir()
    shutil.copy(REPO / "models" / "fashion-cdcgan" / "report.json", tmp_path / "m" / "report.json")
    path = tmp_path / "m.md"
    path.write_text(f"# m\n\nintro\n\n{MARKER}old table\n{END}\nafter\n")
    return path


def test_the_block_is_rewritten_from_the_report_and_the_rest_kept(card: Path) -> None:
    assert main([str(card)]) == 0
    text = card.read_text()
    report = json.loads((card.parent / "m" / "report.json").read_text())
    assert text.startswith(f"# m\n\nintro\n\n{MARKER}## Evaluation (`gan-evaluate`, n = 10000")
    assert "\n".join(render_metrics(report)) in text
    assert text.endswith(f"```\n{END}\nafter\n") and "old table" not in text
    assert regenerate(card) == text  # a second run changes nothing


def test_check_reports_a_stale_card_and_changes_nothing(
    card: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = card.read_text()
    assert main(["--check", str(card)]) == 1
    assert card.read_text() == before
    assert "stale evaluation table" in capsys.readouterr().err


def test_a_card_without_markers_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.md"
    bare.write_text("# no block\n")
    with pytest.raises(SystemExit) as exited:
        main([str(bare)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no `<!-- evaluation table" in err
