"""The settings and metrics tables of docs/service.md and README.md match the code
(`python -m service.doctables --write` rewrites them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service import doctables
from service.settings import Settings


def test_docs_and_readme_tables_match_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    # after adding or changing a setting or a metric: python -m service.doctables --write
    assert doctables.main([]) == 0, capsys.readouterr().err


def test_every_setting_has_one_row_with_its_default() -> None:
    rows = doctables.settings_rows({})
    assert [row[0] for row in rows] == [f"`GAN_{name.upper()}`" for name in Settings.model_fields]
    by_name = {row[0]: row for row in rows}
    assert by_name["`GAN_MAX_BATCH`"][1] == f"`{Settings.model_fields['max_batch'].default}`"
    assert by_name["`GAN_MODEL_PATH`"][1] == "unset"


def test_counters_are_listed_with_their_total_suffix_and_labels() -> None:
    rows = {row[0]: row for row in doctables.metrics_rows({})}
    assert rows["`gan_requests_total`"][1:3] == ["counter", "`route`, `status`"]
    assert rows["`gan_ready`"][1:3] == ["gauge", ""]


@pytest.fixture
def copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    docs, readme = tmp_path / "service.md", tmp_path / "README.md"
    shutil.copy(doctables.DOCS, docs)
    shutil.copy(doctables.README, readme)
    monkeypatch.setattr(doctables, "REPO", tmp_path)
    monkeypatch.setattr(doctables, "DOCS", docs)
    monkeypatch.setattr(doctables, "README", readme)
    return docs, readme


def test_a_missing_row_is_stale_and_write_adds_it_to_both_files(
    copies: tuple[Path, Path],
) -> None:
    docs, readme = copies
    for path in copies:
        lines = [line for line in path.read_text().split("\n") if "`GAN_MAX_BATCH`" not in line]
        path.write_text("\n".join(lines))
    assert doctables.main([]) == 1
    assert doctables.main(["--write"]) == 0
    assert doctables.main([]) == 0
    row = "| `GAN_MAX_BATCH` | `256` | most images in one onnxruntime run |"
    assert row in docs.read_text() and row in readme.read_text()


def test_the_readme_copies_the_docs_meaning(copies: tuple[Path, Path]) -> None:
    docs, readme = copies
    docs.write_text(docs.read_text().replace("largest `n` of one request", "biggest n"))
    assert doctables.main(["--write"]) == 0
    assert "| `GAN_MAX_SAMPLES` | `1024` | biggest n |" in readme.read_text()
