"""`python -m bench`: one entry point, a subcommand per tool, each with its own --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import __main__ as cli

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_every_command_with_the_first_line_of_its_module() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "1000"},  # one line per command
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    listed = run.stdout.split("  COMMAND\n")[1].split("\n\n")[0]
    expected = " ".join(f"{name} {cli.summary(module)}" for name, module in cli.COMMANDS.items())
    assert " ".join(listed.split()) == " ".join(expected.split())


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_answers_its_own_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m bench {name} ")


def test_an_unknown_command_is_refused_with_the_list() -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["serve_compare"])
    assert done.value.code == 2


def test_no_other_module_of_bench_is_an_entry_point() -> None:
    # The peers' apps (bench/peers/) are started in their own environments, not by a user.
    own = [path for path in (REPO / "bench").glob("*.py") if path.name != "__main__.py"]
    assert own and not [p.name for p in own if 'if __name__ == "__main__"' in p.read_text()]


def test_the_benchmarks_page_lists_every_command() -> None:
    page = (REPO / "docs" / "benchmarks.md").read_text()
    table = page.split("## The commands")[1].split("\n## ")[0]
    listed = {
        line.split("`")[1].split()[3] for line in table.splitlines() if line.startswith("| `")
    }
    assert listed == set(cli.COMMANDS)
