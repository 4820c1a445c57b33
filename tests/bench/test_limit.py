"""bench/limit.py measures a real onnxruntime session and the service's encoding; the
benchmark measures it once per round and reports the median measurement."""

from __future__ import annotations

from pathlib import Path

from bench import limit
from tests.support import onnx_models as models


def test_the_median_measurement_is_reported_with_every_measurements_time(tmp_path: Path) -> None:
    path = models.mlp_generator(tmp_path / "mlp.onnx")
    measured = [limit.measure(str(path), "cpu", batch=8, n=4, min_s=0.01) for _ in range(3)]
    for one in measured:
        assert one["t_image_us"] > 0 and one["limit_req_per_s"]["png"] > 0
    middle = sorted(m["t_image_us"] for m in measured)[1]
    chosen = limit.median_of(measured)
    assert chosen["t_image_us"] == middle
    assert chosen["t_image_us_each"] == [m["t_image_us"] for m in measured]
    # of an even count, the slower of the two middle ones
    assert limit.median_of(measured[:2])["t_image_us"] == max(m["t_image_us"] for m in measured[:2])
