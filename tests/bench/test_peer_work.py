"""The peers' per-request work answers with the same PNG bytes as gan-serve's encoding."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bench import limit

WORK = Path(__file__).resolve().parents[2] / "bench" / "peers" / "work.py"


def _peer_work() -> ModuleType:
    # Peers import it as a top-level module from their own folder, not as bench.peers.work.
    spec = importlib.util.spec_from_file_location("peer_work", WORK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17])
def test_peer_grid_png_is_byte_identical_to_the_services_png(n: int) -> None:
    work = _peer_work()
    images = np.random.default_rng(n).uniform(-1.1, 1.1, (n, 1, 28, 28)).astype(np.float32)
    encode, _ = limit.service_encoder(n, "bench")
    assert work.grid_png(work.to_uint8(images)) == encode("png", images)
