"""The memory budget in bytes (GAN_MEMORY_BUDGET_MB): models sized to it at start-up,
requests admitted by the bytes they will hold, peak memory under the budget."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.models import memory
from tests.service.conftest import Server, poll, settings_for
from tests.support.gan_serve import gan_serve


def big_generator(path: Path, side: int, base: int = 8, latent: int = 8) -> Path:
    """An unconditional (1, side, side) generator: z -> base x base -> nearest upsampling."""
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((latent, base * base)) * 0.1).astype(np.float32)
    inits = [
        numpy_helper.from_array(weights, "W"),
        numpy_helper.from_array(np.array([-1, 1, base, base], np.int64), "shape"),
        numpy_helper.from_array(np.array([1, 1, side / base, side / base], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Reshape", ["h", "shape"], ["x"]),
        helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest"),
        helper.make_node("Tanh", ["r"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, side, side])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, path)
    return path


def test_image_costs_come_from_the_graph(tmp_path: Path) -> None:
    model = onnx.load(big_generator(tmp_path / "big.onnx", 512))
    pixels = 512 * 512
    assert memory.held_bytes((1, 512, 512), 8) >= pixels * (4 + 1)  # float rows + uint8 pixels
    # The upsampled tensor and the output, float32 each: shape inference sees both.
    assert memory.working_bytes(model, (1, 512, 512)) >= 2 * pixels * 4


def test_a_model_whose_one_image_cannot_fit_is_refused_with_one_line_naming_it(
    tmp_path: Path, serve: Callable[..., Server]
) -> None:
    path = big_generator(tmp_path / "huge.onnx", 50000)  # 10 GB per image: never allocated
    srv = serve(settings_for(tmp_path, memory_budget_mb=256), ready=False)
    poll(lambda: srv.client.get("/readyz").json()["status"] == "failed", timeout=60)
    reason = srv.client.get("/readyz").json()["reason"]
    assert "\n" not in reason and str(path) in reason and "GAN_MEMORY_BUDGET_MB=256" in reason


def test_max_batch_is_lowered_to_fit_the_budget_and_shown(
    tmp_path: Path, serve: Callable[..., Server]
) -> None:
    big_generator(tmp_path / "big.onnx", 512)
    srv = serve(settings_for(tmp_path, max_batch=256, memory_budget_mb=64))
    limits = srv.client.get("/models").json()["models"][0]["limits"]
    assert 1 <= limits["max_batch"] < 256
    reserve = limits["max_batch"] * limits["run_bytes_per_image"]
    assert reserve + limits["bytes_per_image"] <= 64 * memory.MB


def test_a_request_that_can_never_fit_is_413_naming_n(
    tmp_path: Path, serve: Callable[..., Server]
) -> None:
    big_generator(tmp_path / "big.onnx", 512)
    srv = serve(settings_for(tmp_path, memory_budget_mb=64, max_samples=64, max_queue=64))
    largest = srv.client.get("/models").json()["models"][0]["limits"]["largest_request"]
    assert 1 <= largest < 64
    response = srv.client.post("/samples", params={"n": largest + 1, "format": "npy"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and error["field"] == "n"
    assert f"n={largest + 1}" in error["message"] and f"at most {largest}" in error["message"]
    assert srv.client.post("/samples", params={"n": largest, "format": "npy"}).status_code == 200


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_concurrent_maximal_requests_stay_under_the_budget_with_no_5xx(tmp_path: Path) -> None:
    """Six concurrent requests that would hold ~6x the budget between them: some wait for
    room or get 503, none gets a 5xx, and the process's memory grows by less than the budget."""
    big_generator(tmp_path / "big.onnx", 512)
    budget_mb = 64
    env = {
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_RUN_SLOTS": "1",
        "GAN_MAX_BATCH": "8",
        "GAN_MEMORY_BUDGET_MB": str(budget_mb),
        "GAN_LOG_LEVEL": "warning",
    }
    with gan_serve(env, tmp_path / "server.log") as served:
        largest = served.get("/models").json()["models"][0]["limits"]["largest_request"]
        start_kib = _kib(served.process.pid, "VmRSS")

        def post(_: int) -> int:
            params = {"n": largest, "format": "png"}
            return httpx.post(f"{served.url}/samples", params=params, timeout=60).status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(post, range(6)))
        peak_kib = _kib(served.process.pid, "VmHWM")
    growth_mb = (peak_kib - start_kib) / 1024
    print(  # the figure docs/reliability.md reports (pytest -s)
        f"6 x n={largest} on 512x512: statuses {sorted(statuses)}, RSS {start_kib / 1024:.0f} MB "
        f"-> peak {peak_kib / 1024:.0f} MB (+{growth_mb:.0f} MB, budget {budget_mb} MB)"
    )
    assert all(status in (200, 503) for status in statuses), statuses
    assert 200 in statuses
    assert (peak_kib - start_kib) * 1024 <= budget_mb * memory.MB, (start_kib, peak_kib)
