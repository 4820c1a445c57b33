"""Starting, restarting and resuming a run directory without losing anyone's work.

- A new run refuses a directory holding a checkpoint (pass --resume or --overwrite) or
  files that a run does not write; a directory holding only what a run killed before its
  first checkpoint wrote is simply started over.
- --resume continues from checkpoints/last.pt; when there is no checkpoint yet it starts
  from step 0 (saying so). A corrupt or truncated last.pt is one line naming it and the
  newest intact epoch-XXXX.pt, which --resume-from PATH continues from.
- The resumed config must equal the saved one except for the options that only say
  where and how long to run (config.RESUMABLE_OVERRIDES); identical values are fine.
- Temporary files of interrupted checkpoint writes (.last.pt.<pid>.tmp) are removed.

Only the files a run writes (RUN_ARTIFACTS) are ever deleted, never other files.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training import checkpoint
from training.config import RESUMABLE_OVERRIDES, TrainConfig, TrainingError

RUN_ARTIFACTS = ("checkpoints", "samples", "metrics.jsonl", "config.json", "curves.png")


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def _readable(path: Path) -> dict[str, Any] | None:
    try:
        return checkpoint.load(path)
    except Exception:  # truncated zip, bad pickle, foreign file: all mean "not usable"
        return None


def newest_intact_epoch(run_dir: Path) -> Path | None:
    """The newest epoch-XXXX.pt that loads, or None."""
    for path in sorted(checkpoints_dir(run_dir).glob("epoch-*.pt"), reverse=True):
        if _readable(path) is not None:
            return path
    return None


def load_checkpoint(path: Path, run_dir: Path) -> dict[str, Any]:
    """Load `path`; a file that cannot be read is one line naming it and what to do."""
    try:
        return checkpoint.load(path)
    except Exception as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:120]
        intact = newest_intact_epoch(run_dir)
        advice = (
            f"the newest intact checkpoint is {intact}: continue from it with "
            f"--resume-from {intact}"
            if intact is not None and intact != path
            else "no intact epoch-XXXX.pt is left: start over with --overwrite"
        )
        raise TrainingError(f"checkpoint {path} is unreadable ({reason}); {advice}") from None


def resume_source(run_dir: Path, resume_from: Path | None) -> Path | None:
    """The checkpoint a resume continues from, or None when the run has none yet."""
    if resume_from is not None:
        if not resume_from.is_file():
            raise TrainingError(f"--resume-from {resume_from}: no such file")
        return resume_from
    last = checkpoints_dir(run_dir) / "last.pt"
    if last.is_file():
        return last
    intact = newest_intact_epoch(run_dir)
    if intact is not None:
        raise TrainingError(
            f"{last} is missing; continue from {intact} with --resume-from {intact}"
        )
    return None


def saved_config(run_dir: Path, resume_from: Path | None) -> TrainConfig | None:
    """The config stored in the checkpoint a resume would continue from (None: none yet)."""
    source = resume_source(run_dir, resume_from)
    if source is None:
        return None
    return TrainConfig.from_dict(load_checkpoint(source, run_dir)["config"])


def open_resume_checkpoint(config: TrainConfig, resume_from: Path | None) -> dict[str, Any] | None:
    """The checkpoint to continue `config`'s run from, checked against `config`; None
    (after a notice) when the run directory has no checkpoint yet."""
    run_dir = Path(config.out)
    source = resume_source(run_dir, resume_from)
    if source is None:
        print(f"gan-train: no checkpoint in {run_dir} yet; starting from step 0", file=sys.stderr)
        return None
    state = load_checkpoint(source, run_dir)
    saved = TrainConfig.from_dict(state["config"]).resolve()
    changed = [
        f"--{name.replace('_', '-')} (saved {getattr(saved, name)!r}, "
        f"given {getattr(config, name)!r})"
        for name in (field.name for field in dataclasses.fields(TrainConfig))
        if name not in RESUMABLE_OVERRIDES and getattr(saved, name) != getattr(config, name)
    ]
    if changed:
        raise TrainingError(
            "--resume continues the saved config; cannot change " + ", ".join(changed)
        )
    return state


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete leftovers of checkpoint writes that a kill interrupted; returns how many."""
    stale = list(checkpoints_dir(run_dir).glob(".*.pt.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def prepare_run_dir(
    run_dir: Path, resume: bool, overwrite: bool, is_main: bool, barrier: Callable[[], None]
) -> None:
    """Check that the run may use `run_dir` and clear what an earlier run left there.
    `resume`: a checkpoint is being continued (so nothing is cleared)."""
    entries = sorted(run_dir.iterdir()) if run_dir.is_dir() else []
    has_checkpoint = any(checkpoints_dir(run_dir).glob("*.pt"))
    foreign = [entry.name for entry in entries if entry.name not in RUN_ARTIFACTS]
    if not resume and not overwrite:
        if has_checkpoint:
            raise TrainingError(
                f"run directory {run_dir} holds a run; pass --resume to "
                "continue it or --overwrite to start over"
            )
        if foreign:
            raise TrainingError(
                f"run directory {run_dir} is not empty ({foreign[0]}); pass --resume to "
                "continue it or --overwrite to start over (either keeps files a run does "
                "not write), or pick another --out"
            )
    barrier()  # every rank has checked before rank 0 changes anything
    if is_main:
        remove_stale_temporaries(run_dir)
        if not resume:
            for name in RUN_ARTIFACTS:  # only what a run writes: never the user's files
                target = run_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
    barrier()
