"""How every console script (gan-train, gan-export, gan-evaluate, gan-serve) reports a user
error: one line `PROG: error: MESSAGE` on stderr and exit status 2, never a traceback or a
usage dump; and how one that needs an optional extra says so (`require`). Lives in the
neutral core because every install has it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Mapping
from typing import NoReturn

EXIT_USAGE = 2


def error(prog: str, message: str) -> int:
    """Write the one error line; return the exit status for `main()` to return."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    return EXIT_USAGE


def fail(prog: str, message: str) -> NoReturn:
    """Write the one error line and exit with status 2."""
    raise SystemExit(error(prog, message))


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message)


def require(prog: str, work: str, modules: Mapping[str, str], install: str) -> None:
    """Exit with one line naming what to install when one of `modules` (module -> the name
    people know it by) is missing, instead of the traceback of the first import needing it."""
    for module, name in modules.items():
        if importlib.util.find_spec(module) is None:
            fail(prog, f"{work} needs {name}: {install}")
