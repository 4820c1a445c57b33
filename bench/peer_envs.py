"""One virtual environment per peer server, made once under `.bench/venvs/` and reused.

Each peer gets the same numpy, Pillow and onnxruntime build as the service's environment
(read from it, so a change there is followed here), plus its own framework at a pinned
version. Where a pin cannot be installed, the next looser set is tried and what was
installed is recorded in the environment's stamp file, which the benchmark report echoes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / ".bench" / "venvs"

# The framework each peer is built on, at the version the benchmark was written against;
# the plain FastAPI peer runs the service's own FastAPI and uvicorn (with its fast extras).
FRAMEWORK: dict[str, list[str]] = {
    "fastapi": ["fastapi", "uvicorn[standard]"],
    "litserve": ["litserve==0.2.19"],
    "triton": ["nvidia-pytriton==0.7.0"],
    "bentoml": ["bentoml==1.4.40"],
}
# Packages whose version in the stamp tells which build a peer ran on.
_REPORTED = (
    "fastapi",
    "uvicorn",
    "litserve",
    "nvidia-pytriton",
    "bentoml",
    "numpy",
    "pillow",
    "isal",
    "onnxruntime",
    "onnxruntime-gpu",
)


def _runtime_pins() -> list[str]:
    """onnxruntime (the build the service has: CPU or GPU wheel), Pillow and numpy as in the
    service's environment (this interpreter's)."""
    for ort in ("onnxruntime-gpu", "onnxruntime"):  # the two never share an environment
        try:
            pins = [f"{ort}=={metadata.version(ort)}"]
            break
        except metadata.PackageNotFoundError:
            continue
    else:
        raise RuntimeError("the service's environment has no onnxruntime")
    return pins + [f"{name}=={metadata.version(name)}" for name in ("pillow", "numpy", "isal")]


def _framework(peer: str) -> list[str]:
    if peer == "fastapi":
        return [
            f"fastapi=={metadata.version('fastapi')}",
            f"uvicorn[standard]=={metadata.version('uvicorn')}",
        ]
    return FRAMEWORK[peer]


def _attempts(peer: str) -> list[list[str]]:
    """Requirement sets from strictest to loosest: a framework may need another numpy
    (nvidia-pytriton 0.7.0 wants numpy < 2), and a pinned framework may not install."""
    runtime = _runtime_pins()  # onnxruntime, pillow, numpy, isal
    framework = _framework(peer)
    unpinned = [req.split("==")[0] for req in framework]
    without_numpy = [*runtime[:2], runtime[3]]  # isal stays: the PNG writer needs it
    return [framework + runtime, framework + without_numpy, unpinned + without_numpy]


def python_of(peer: str) -> Path:
    return ROOT / peer / "bin" / "python"


def stamp_of(peer: str) -> Path:
    return ROOT / peer / "bench-stamp.json"


def installed(peer: str) -> dict[str, object] | None:
    """The stamp of a ready environment that matches today's requirements, or None (then
    the environment is made again: the service's numpy, Pillow or onnxruntime changed)."""
    try:
        stamp: dict[str, object] = json.loads(stamp_of(peer).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return stamp if stamp.get("requested") in _attempts(peer) else None


def ensure(peer: str, log: Path | None = None) -> dict[str, object]:
    """Make `peer`'s environment unless a ready one exists; return its stamp.

    Raises RuntimeError (with the tail of pip's output) when no requirement set installs.
    """
    if (stamp := installed(peer)) is not None:
        return stamp
    home = ROOT / peer
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    python = str(python_of(peer))
    tail = ""
    for requirements in _attempts(peer):
        done = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", *requirements],
            capture_output=True,
            text=True,
        )
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as out:
                out.write(f"$ pip install {' '.join(requirements)}\n{done.stdout}{done.stderr}\n")
        if done.returncode == 0:
            return _write_stamp(peer, requirements)
        tail = (done.stdout + done.stderr)[-1500:]
    raise RuntimeError(f"cannot install the {peer} peer:\n{tail}")


def _write_stamp(peer: str, requirements: list[str]) -> dict[str, object]:
    versions = subprocess.run(
        [str(python_of(peer)), "-c", _VERSIONS, *_REPORTED],
        capture_output=True,
        text=True,
        check=True,
    )
    stamp = {"requested": requirements, "versions": json.loads(versions.stdout)}
    stamp_of(peer).write_text(json.dumps(stamp, indent=1) + "\n")
    return stamp


_VERSIONS = """
import json, sys
from importlib import metadata
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(found))
"""


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python -m bench peer-envs [PEER ...]`: make the environments ahead of a run."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "peers", nargs="*", metavar="PEER", help=f"of {', '.join(FRAMEWORK)} (default: all)"
    )
    peers = parser.parse_args(argv).peers or list(FRAMEWORK)
    if unknown := sorted(set(peers) - set(FRAMEWORK)):
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(FRAMEWORK)}")
    for peer in peers:
        try:
            print(peer, json.dumps(ensure(peer, ROOT / f"{peer}-pip.log")), flush=True)
        except RuntimeError as exc:
            print(exc, file=sys.stderr, flush=True)
    return 0
