"""The run paths of `service.models.engine` on the CPU provider: IO binding into the run's own
array, and the fixed buffers CUDA graphs need, taking the device name ("cpu" here), give the
bytes of `session.run`, and keep each run's images its own."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core import contract
from service.models import generator, loading
from service.models.engine import Engine, RunPath
from service.models.generator import Generator, RunStop
from tests.support import onnx_models as models

PATHS: tuple[RunPath, ...] = ("plain", "bound", "fixed")
PAD_TO = [1, 2, 4, 8]
conditional_mlp = functools.partial(models.mlp_generator, latent=100, conditional=True)
tiny_dcgan = functools.partial(models.dcgan_generator, latent=16, channels=3, base=4, width=16)


def cpu_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def padded_generator(path: Path, run_path: RunPath, *, one_thread: bool = False) -> Generator:
    """A generator padding runs to PAD_TO, a CPU session per padded size, on `run_path`."""
    engine = Engine(
        cpu_session(path),
        path=run_path,
        device="cpu",
        open_session=functools.partial(cpu_session, path),
        one_thread=one_thread,
    )
    return Generator(contract.inspect(path), engine, ["cpu"], pad_to=PAD_TO)


def inputs(
    gen: Generator, rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:  # (rows, latent), (rows,)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, gen.spec.latent_dim), dtype=np.float32)
    labels = rng.integers(0, 10, rows).astype(np.int64) if gen.spec.conditional else None
    return z, labels


def session_run(session: ort.InferenceSession, z: np.ndarray, labels: np.ndarray | None) -> object:
    feeds = {"z": z} if labels is None else {"z": z, "label": labels}
    return session.run(["image"], feeds)[0]


@pytest.mark.parametrize("build", [conditional_mlp, tiny_dcgan], ids=["conditional", "uncond"])
@pytest.mark.parametrize("run_path", PATHS)
def test_every_run_path_gives_the_bytes_of_session_run(
    tmp_path: Path, build: Callable[[Path], Path], run_path: RunPath
) -> None:
    path = build(tmp_path / "m.onnx")
    reference = cpu_session(path)
    gen = padded_generator(path, run_path)
    for rows, seed in [(3, 0), (8, 1), (1, 2), (3, 3), (5, 4)]:  # padded to 4, 8, 1, 4, 8
        z, labels = inputs(gen, rows, seed)
        images = gen.run(z, labels)
        assert images.dtype == np.float32 and images.shape == (rows, *gen.spec.image_shape)
        assert np.array_equal(images, session_run(reference, z, labels))


def test_a_run_on_fixed_buffers_keeps_its_images_when_the_next_run_overwrites_them(
    tmp_path: Path,
) -> None:
    gen = padded_generator(conditional_mlp(tmp_path / "m.onnx"), "fixed")
    first = gen.run(*inputs(gen, 4, seed=0))
    kept = first.copy()
    second = gen.run(*inputs(gen, 4, seed=1))  # the same padded size: the same buffers
    assert np.array_equal(first, kept) and not np.array_equal(first, second)


def test_threads_running_at_once_on_fixed_buffers_each_get_their_own_images(
    tmp_path: Path,
) -> None:
    path = conditional_mlp(tmp_path / "m.onnx")
    gen = padded_generator(path, "fixed")
    reference = cpu_session(path)
    threads, runs = 6, 25
    start = threading.Barrier(threads, timeout=30)
    wrong: list[tuple[int, int]] = []

    def work(thread: int) -> None:
        start.wait()
        for run in range(runs):
            z, labels = inputs(gen, 3 + (thread + run) % 2, seed=thread * 1000 + run)  # 3 or 4
            if not np.array_equal(gen.run(z, labels), session_run(reference, z, labels)):
                wrong.append((thread, run))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert wrong == []


@pytest.mark.parametrize("run_path", PATHS)
def test_a_run_stopped_before_or_while_it_runs_raises_and_the_next_run_serves(
    tmp_path: Path, run_path: RunPath
) -> None:
    gen = padded_generator(
        models.slow_generator(tmp_path / "slow.onnx", iterations=10**7), run_path
    )
    z = np.zeros((3, gen.spec.latent_dim), np.float32)
    before = RunStop()
    before.stop()
    with pytest.raises(Exception, match="terminate"):
        gen.run(z, None, before)

    during, failed = RunStop(), []

    def run() -> None:
        try:
            gen.run(z, None, during)
        except Exception as exc:
            failed.append(str(exc))

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.2)  # inside the Loop of 10⁷ matrix products by now
    during.stop()
    worker.join(timeout=30)
    assert not worker.is_alive() and len(failed) == 1 and "terminate" in failed[0]

    fast = padded_generator(conditional_mlp(tmp_path / "m.onnx"), run_path)
    assert fast.run(*inputs(fast, 3, seed=0), RunStop()).shape == (3, 1, 28, 28)


def test_fixed_buffers_need_padded_runs(tmp_path: Path) -> None:
    path = conditional_mlp(tmp_path / "m.onnx")
    gen = Generator(contract.inspect(path), Engine(cpu_session(path), path="fixed"), ["cpu"])
    with pytest.raises(ValueError, match="padded"):
        gen.run(*inputs(gen, 3, seed=0))


def test_an_engine_on_one_thread_runs_every_run_there(tmp_path: Path) -> None:
    path = conditional_mlp(tmp_path / "m.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    engine = Engine(session, path="fixed", one_thread=True)
    gen = Generator(contract.inspect(path), engine, ["cpu"], pad_to=[4])
    callers = [threading.Thread(target=gen.run, args=inputs(gen, 4, seed=s)) for s in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)
    gen.run(*inputs(gen, 4, seed=9))  # and from this thread too
    events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    assert len(runs) == 5 and len({e["tid"] for e in runs}) == 1


def test_load_on_the_cpu_ignores_devices_and_cuda_graphs(tmp_path: Path) -> None:
    path = conditional_mlp(tmp_path / "m.onnx")
    gen = generator.load(path, ["cpu"], 1, [1, 2, 4], cuda_graphs=True, devices=[3, 5])
    assert (gen.provider, gen.devices, gen.cuda_graphs, gen.io_binding) == ("cpu", (), False, False)
    assert gen.pool.ids == [0] and gen.session_for(4) is gen.session  # no padding on the CPU
    assert loading.describe(gen).startswith("provider cpu, CUDA graphs off, ")
