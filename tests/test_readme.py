"""README's set-up commands are the ones CI runs, and the CLIs it names exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = "pip install -q -e '.[train,dev]' && python -m pytest"
    assert any(test_command in block for block in _code_blocks(README))
    ci_lines = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == test_command


def test_readme_serve_command_uses_the_console_script() -> None:
    assert any("pip install -e . && gan-serve" in block for block in _code_blocks(README))


def test_every_console_script_the_readme_uses_is_declared() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    used = set(re.findall(r"\b(gan-[a-z]+)\b", README))
    assert used <= set(scripts), used - set(scripts)
    assert {"gan-train", "gan-export", "gan-evaluate", "gan-serve"} <= set(scripts)
