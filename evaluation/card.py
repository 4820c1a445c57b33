"""Model cards' evaluation tables, generated from the card's `report.json`.

    python -m evaluation.card models/fashion-cdcgan.md            # rewrite the block
    python -m evaluation.card --check models/*.md                 # exit 1 if one is stale

A card holds the block between two markers; the first names the report, relative to the
card:

    <!-- evaluation table: generated from fashion-cdcgan/report.json by
         `python -m evaluation.card`; do not edit -->
    ...
    <!-- end of evaluation table -->

Everything between them is rewritten: the heading with n and seed, the evaluator's sha256
and accuracy, and the table `gan-evaluate` printed (`evaluation.render`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from core.console import OneLineParser, fail
from evaluation.render import render_metrics

PROG = "python -m evaluation.card"
BEGIN = re.compile(
    r"<!-- evaluation table: generated from (?P<report>\S+) by\s+`python -m evaluation\.card`;"
    r" do not edit -->\n"
)
END = "<!-- end of evaluation table -->"


class CardError(ValueError):
    """A card without a well-formed block, or a report that cannot be read. One line."""


def render_block(report: dict[str, Any], report_link: str) -> str:
    """The generated text between the markers (no markers)."""
    settings, evaluator = report["settings"], report["evaluator"]
    lines = [
        f"## Evaluation (`gan-evaluate`, n = {settings['n']}, seed {settings['seed']})",
        "",
        f"Evaluator sha256 `{evaluator['sha256']}`",
        f"(test accuracy {evaluator['test_accuracy']}). Every row is scored against the "
        f"{_thousands(report['dataset']['test_size'])} test split.",
        f"Full JSON: [{report_link}]({report_link}).",
        "",
        "```",
        *render_metrics(report),
        "```",
    ]
    return "\n".join(lines) + "\n"


def _thousands(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def _block(card: Path, text: str) -> tuple[re.Match[str], int]:
    begin = BEGIN.search(text)
    if begin is None:
        raise CardError(f"{card}: no `<!-- evaluation table: generated from ... -->` marker")
    end = text.find(END, begin.end())
    if end < 0:
        raise CardError(f"{card}: no `{END}` after the evaluation table marker")
    return begin, end


def regenerate(card: Path) -> str:
    """The card's text with its evaluation block rebuilt from its report."""
    text = card.read_text()
    begin, end = _block(card, text)
    report_path = card.parent / begin["report"]
    try:
        report = json.loads(report_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CardError(f"{card}: cannot read {report_path} ({error})") from None
    return text[: begin.end()] + render_block(report, begin["report"]) + text[end:]


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=PROG, description="Rewrite model cards' evaluation tables.")
    p.add_argument("cards", type=Path, nargs="+", metavar="CARD.md", help="model card files")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a card is stale")
    args = p.parse_args(argv)
    stale = []
    for card in args.cards:
        try:
            current, wanted = card.read_text(), regenerate(card)
        except (OSError, CardError) as error:
            fail(PROG, str(error))
        if current == wanted:
            continue
        stale.append(card)
        if not args.check:
            card.write_text(wanted)
            print(f"rewrote the evaluation table of {card}", file=sys.stderr)
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"{PROG}: stale evaluation table in {names}; rerun without --check", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
