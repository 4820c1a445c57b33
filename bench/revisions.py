"""Another revision of gan-serve against this tree, side by side: did a change cost speed?

    python -m bench revisions --before 738a2c4 --model cheap
    python -m bench revisions --before 738a2c4 --model models/fashion-cdcgan.onnx \
        --out docs/bench-results/revisions-DATE.json

The other revision is checked out into a scratch git worktree and run from there
(`python -m service` in that checkout imports its own packages), with the same settings as
this tree's server; both run on the same model at once, and `bench.sidebyside` alternates
pairs of `wrk` runs between them. The ratio is this tree over the other revision. Settings
given with `--env NAME=VALUE` apply to both (e.g. GAN_WORKERS=1 where the other revision
predates it and ignores it).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench import sidebyside
from bench.sidebyside import Side

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """`revision` in a scratch git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "tree"
        git = ["git", "-C", str(REPO), "worktree"]
        subprocess.run([*git, "add", "--detach", str(folder), revision], check=True)
        try:
            yield folder
        finally:
            subprocess.run([*git, "remove", "--force", str(folder)], check=False)


def short(revision: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", revision],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", required=True, help="the revision to compare with")
    sidebyside.add_env_option(parser, "a setting for both")
    sidebyside.add_options(parser)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    settings = tuple(args.env)
    command = "python -m bench revisions " + " ".join(argv or [])
    head = short("HEAD")
    with checkout(args.before) as tree:
        before = Side(f"gan-serve@{short(args.before)}", settings, tree)
        after = Side(f"gan-serve@{head}+tree", settings)
        sidebyside.run((before, after), args, command)
    return 0
