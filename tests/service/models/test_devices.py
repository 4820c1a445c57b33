"""Several devices: GAN_DEVICES checked against what the driver reports, and each run sent to
the device with the fewest runs in flight. Real CPU sessions stand in for the GPUs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core import contract
from service.models.devices import DevicePool, choose_devices
from service.models.engine import Engine
from service.models.generator import Generator, ModelError, RunStop
from tests.support import onnx_models as models


def test_unset_devices_are_every_gpu_the_driver_reports() -> None:
    assert choose_devices(None, 3) == [0, 1, 2]
    assert choose_devices((2, 0), 3) == [0, 2]


def test_a_device_the_driver_does_not_report_is_one_line_naming_gan_devices() -> None:
    with pytest.raises(ModelError) as caught:
        choose_devices((0, 2), 2)
    message = str(caught.value)
    assert message.startswith("GAN_DEVICES=0,2: the NVIDIA driver reports 2 GPU(s)")
    assert "not 2" in message and "\n" not in message


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def two_devices(tmp_path: Path) -> Generator:
    """A generator on two engines (ids 0 and 1), each a real CPU session of a model whose
    runs take until they are stopped."""
    path = models.slow_generator(tmp_path / "slow.onnx", iterations=10**7)
    engines = {
        device: Engine(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        for device in (1, 0)
    }
    return Generator(contract.inspect(path), engines, ["cpu"])


def test_each_run_goes_to_the_device_with_the_fewest_runs_in_flight(
    two_devices: Generator,
) -> None:
    gen, z = two_devices, np.zeros((2, 8), np.float32)
    pool = gen.pool
    errors: list[str] = []
    stops: list[RunStop] = []

    def start(expected: dict[int, int]) -> RunStop:
        stop = RunStop()
        stops.append(stop)

        def run() -> None:
            try:
                gen.run(z, None, stop)
            except Exception as exc:  # the stop: what every run here ends with
                errors.append(str(exc))

        threading.Thread(target=run, daemon=True).start()
        wait_for(lambda: pool.in_flight() == expected)
        return stop

    start({0: 1, 1: 0})  # both idle: the lowest id
    second = start({0: 1, 1: 1})  # the idle one
    start({0: 2, 1: 1})  # a tie again: the lowest id
    second.stop()  # its count comes back although the run raised
    wait_for(lambda: pool.in_flight() == {0: 2, 1: 0})
    start({0: 2, 1: 1})  # two runs busy on device 0: the next goes to device 1
    for stop in stops:
        stop.stop()
    wait_for(lambda: pool.in_flight() == {0: 0, 1: 0} and len(errors) == 4)
    assert all("terminate" in error for error in errors)


def test_a_failed_run_releases_its_device(tmp_path: Path) -> None:
    # labels past the embedding's rows fail inside onnxruntime (Gather out of bounds)
    path = models.mlp_generator(tmp_path / "m.onnx", conditional=True, embedding_rows=3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = Generator(contract.inspect(path), {0: Engine(session), 1: Engine(session)}, ["cpu"])
    z = np.zeros((2, 8), np.float32)
    with pytest.raises(Exception, match=r"Gather|indices"):
        gen.run(z, np.array([0, 9], np.int64))
    assert gen.pool.in_flight() == {0: 0, 1: 0}
    assert gen.run(z, np.array([0, 2], np.int64)).shape == (2, 1, 28, 28)


def test_a_pool_needs_an_engine() -> None:
    with pytest.raises(ValueError, match="at least one"):
        DevicePool[Engine]({})
