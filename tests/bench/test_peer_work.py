"""The peers' per-request work answers with the same PNG bytes as gan-serve's encoding, and
takes from the checkout only what the peers' own environments can import."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bench import limit

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "bench" / "peers" / "work.py"
# What a peer's virtual environment has besides its framework (bench/peer_envs.py).
PEER_PACKAGES = {"numpy", "isal", "onnxruntime"}


def _peer_work() -> ModuleType:
    # Peers import it as a top-level module from their own folder, not as bench.peers.work.
    spec = importlib.util.spec_from_file_location("peer_work", WORK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17])
def test_peer_grid_png_is_byte_identical_to_the_services_png(n: int) -> None:
    work = _peer_work()
    images = np.random.default_rng(n).uniform(-1.1, 1.1, (n, 1, 28, 28)).astype(np.float32)
    encode, _ = limit.service_encoder(n, "bench")
    assert work.grid_png(work.to_uint8(images)) == encode("png", images)


def test_the_peers_take_the_contracts_grid_and_nothing_their_environments_lack() -> None:
    from_checkout = {m for m in _imports(WORK) if (REPO / m.split(".")[0]).is_dir()}
    assert from_checkout == {"core.pixels", "service.encoding.png"}
    work = _peer_work()
    from core import contract

    assert work.grid is contract.grid and work.to_uint8 is contract.to_uint8
    for module in from_checkout:
        outside = {
            m.split(".")[0]
            for m in _imports(REPO / Path(*module.split(".")).with_suffix(".py"))
            if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"
        }
        assert outside <= PEER_PACKAGES, f"{module} needs {sorted(outside - PEER_PACKAGES)}"


def test_the_raw_generator_gives_the_files_own_images(tmp_path: Path) -> None:
    from tests.support import onnx_models

    path = tmp_path / "cheap.onnx"
    onnx_models.mlp_generator(path, latent=100, conditional=True)
    sampler = _peer_work().Sampler(str(path))
    z = np.random.default_rng(1).standard_normal((5, 100), dtype=np.float32)
    labels = np.arange(5, dtype=np.int64)
    (expected,) = sampler.session.run(["image"], {"z": z, "label": labels})
    images = sampler.raw(z, labels)
    assert images.dtype == np.float32 and images.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(images, expected)
