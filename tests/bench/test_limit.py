"""bench/limit.py measures a real onnxruntime session and the service's encoding; the
benchmark measures it once per round and reports the median measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import limit
from tests.support import onnx_models as models

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


def test_each_figure_is_the_median_of_its_measurements_with_every_measurements_times(
    tmp_path: Path,
) -> None:
    path = models.mlp_generator(tmp_path / "mlp.onnx")
    measured = [limit.measure(str(path), "cpu", batch=8, n=4, min_s=0.01) for _ in range(3)]
    for one in measured:
        assert one["t_image_us"] > 0 and one["limit_req_per_s"]["png"] > 0
    chosen = limit.median_of(measured)
    for key in ("t_image_us", "t_run16_ms"):
        assert chosen[key] == round(sorted(m[key] for m in measured)[1], 3)
        assert chosen[f"{key}_each"] == [m[key] for m in measured]
    for fmt in ("png", "json", "npy"):
        assert chosen["limit_req_per_s"][fmt] == round(
            sorted(m["limit_req_per_s"][fmt] for m in measured)[1], 3
        )
    # of an even count, the mean of the two middle ones
    two = limit.median_of(measured[:2])
    assert two["t_image_us"] == round(
        (measured[0]["t_image_us"] + measured[1]["t_image_us"]) / 2, 3
    )
