"""The benchmarks' one entry point: `python -m bench COMMAND [ARGS]`.

    python -m bench --help                     # the commands, one line each
    python -m bench serve-compare --quick      # a command's own flags: COMMAND --help

Each command is a module of bench/ with `main(argv, prog)`; a command's module is imported
only when it runs, so `train-throughput` and `ablate` alone need the training extra. The
line each command shows in `--help` is the first line of its module's docstring.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from pathlib import Path

# command -> the module that runs it, in the order `--help` lists them
COMMANDS: dict[str, str] = {
    "serve-compare": "bench.serve_compare",
    "workers": "bench.workers",
    "soak": "bench.soak",
    "revisions": "bench.revisions",
    "v2": "bench.v2",
    "faults": "bench.faults",
    "memory": "bench.memory",
    "report": "bench.report",
    "server-view": "bench.server_view",
    "run-length": "bench.run_length",
    "run-paths": "bench.run_paths",
    "shape-changes": "bench.shape_changes",
    "burst-floor": "bench.burst_floor",
    "wrk": "bench.wrk",
    "peer-envs": "bench.peer_envs",
    "train-throughput": "bench.train_throughput",
    "ablate": "bench.ablate",
}
PROG = "python -m bench"


def summary(module: str) -> str:
    """The first line of `module`'s docstring, read from its source without importing it."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    docstring = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    return docstring.split("\n", 1)[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=summary("bench.__main__"),
        epilog=f"Each command's flags: {PROG} COMMAND --help. Results: docs/benchmarks.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        commands.add_parser(name, help=summary(module), add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Only the command is parsed here; the rest, --help included, is the command's own.
    command = _parser().parse_args(argv[:1]).command
    module = importlib.import_module(COMMANDS[command])
    return int(module.main(argv[1:], prog=f"{PROG} {command}"))


if __name__ == "__main__":
    sys.exit(main())
