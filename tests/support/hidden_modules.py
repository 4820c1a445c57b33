"""Run a console script in a Python that cannot see some installed packages, as if they were
not installed: how the tests check what `pip install -e .` (the service, no torch) runs
without building a second virtual environment.

The child's path finder is blind to the hidden top-level names, so importing one raises the
ModuleNotFoundError of a missing package and `importlib.util.find_spec` returns None, as on
a machine without it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_HIDING = """
import importlib.machinery
import sys

hidden = set(sys.argv.pop(1).split(","))
module, _, function = sys.argv.pop(1).partition(":")
sys.argv[0] = sys.argv.pop(1)
assert not hidden & {name.partition(".")[0] for name in sys.modules}, "imported at start-up"


class BlindPathFinder(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [
    BlindPathFinder if finder is importlib.machinery.PathFinder else finder
    for finder in sys.meta_path
]
main = getattr(__import__(module, fromlist=[function]), function)
raise SystemExit(main())
"""


def console_scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: name → "module:function"."""
    scripts: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "scripts"
    ]
    return scripts


def run_without(
    hidden: Sequence[str],
    script: str,
    argv: Sequence[str],
    timeout_s: float = 600,
    entry: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run console script `script` (or the "module:function" `entry` under that name) with
    `argv` in this Python, from the repository root, with the top-level packages `hidden`
    out of its sight."""
    entry = entry or console_scripts()[script]
    return subprocess.run(
        [sys.executable, "-c", _HIDING, ",".join(hidden), entry, script, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
