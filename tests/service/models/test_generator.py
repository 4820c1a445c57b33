"""Finding generator files and running them in onnxruntime (the contract's reader has its
own tests: test_contract.py)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from core import contract
from service.models import files, generator
from service.models.engine import Engine
from service.models.generator import ModelError
from tests.support import onnx_models as models

REPO = Path(__file__).resolve().parents[3]
# a tiny RGB DCGAN-shaped graph: z (16) → Gemm → 32×4×4 → ConvT 16×8×8 → ConvT 3×16×16
tiny_dcgan = functools.partial(models.dcgan_generator, latent=16, channels=3, base=4, width=16)


def test_discover_lists_onnx_files_or_the_one_model_path(tmp_path: Path) -> None:
    a = models.mlp_generator(tmp_path / "a.onnx")
    (tmp_path / "notes.txt").write_text("x")
    assert files.discover(tmp_path, None) == [a]
    assert files.discover(tmp_path / "missing", None) == []
    assert files.discover(Path("/nowhere"), a) == [a]
    with pytest.raises(ModelError, match="no such model file"):
        files.discover(tmp_path, tmp_path / "missing.onnx")


def test_warmup_sizes_are_powers_of_two_and_max_batch() -> None:
    assert generator.warmup_sizes(1) == [1]
    assert generator.warmup_sizes(6) == [1, 2, 4, 6]
    assert generator.warmup_sizes(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_cuda_asked_for_but_unusable_falls_back_to_cpu(model_dir: Path) -> None:
    # No visible GPU makes CUDA unusable on every machine, with or without one (or with a
    # CPU-only onnxruntime); a fresh process, so CUDA is not initialised yet.
    code = (
        "import sys; from pathlib import Path; from service.models import generator; "
        "g = generator.load(Path(sys.argv[1]), ['cuda', 'cpu'], intra_op_threads=1); "
        "print(g.provider, g.fallback, g.io_binding)"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir / "digits.onnx")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["cpu", "True", "False"]


def test_cpu_asked_for_is_not_a_fallback(model_dir: Path) -> None:
    gen = generator.load(model_dir / "digits.onnx", ["cpu"], intra_op_threads=1)
    assert (gen.provider, gen.fallback) == ("cpu", False)
    assert gen.session.get_session_options().intra_op_num_threads == 1


def test_session_uses_all_graph_optimizations(model_dir: Path) -> None:
    gen = generator.load(model_dir / "digits.onnx", ["cpu"], intra_op_threads=1)
    level = gen.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.mark.parametrize("build", [models.mlp_generator, tiny_dcgan])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_results_do_not_depend_on_batch_composition(
    tmp_path: Path, build: object, threads: int
) -> None:
    path = build(tmp_path / "m.onnx")  # type: ignore[operator]
    gen = generator.load(path, ["cpu"], intra_op_threads=threads)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((33, gen.spec.latent_dim), dtype=np.float32)
    together = gen.run(z, None)
    for i in (0, 17, 32):
        assert np.array_equal(gen.run(z[i : i + 1], None)[0], together[i])
    shuffled = rng.permutation(33)
    assert np.array_equal(gen.run(z[shuffled], None), together[shuffled])


def test_io_binding_and_padding_give_the_same_images(model_dir: Path) -> None:
    path = model_dir / "fashion.onnx"
    plain = generator.load(path, ["cpu"], intra_op_threads=1)
    bound = generator.load(path, ["cpu"], intra_op_threads=1, io_binding=True)
    padded = generator.Generator(plain.spec, Engine(plain.session), ["cpu"], pad_to=[1, 2, 4, 8])
    z = np.random.default_rng(1).standard_normal((3, 8), dtype=np.float32)
    labels = np.array([0, 4, 9], np.int64)
    expected = plain.run(z, labels)
    assert expected.shape == (3, 1, 28, 28) and expected.dtype == np.float32
    assert np.array_equal(bound.run(z, labels), expected)
    assert np.array_equal(padded.run(z, labels), expected)
    assert float(np.abs(expected).max()) <= 1.0


def test_each_padded_size_runs_on_a_session_of_its_own(model_dir: Path) -> None:
    path = model_dir / "fashion.onnx"
    plain = generator.load(path, ["cpu"], intra_op_threads=1)
    opened: list[ort.InferenceSession] = []

    def open_session() -> ort.InferenceSession:
        opened.append(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        return opened[-1]

    padded = generator.Generator(
        plain.spec, Engine(plain.session, open_session=open_session), ["cpu"], pad_to=[2, 4, 8]
    )
    z = np.random.default_rng(2).standard_normal((7, 8), dtype=np.float32)
    labels = np.arange(7, dtype=np.int64)
    for rows in (3, 7, 2, 3, 6):  # padded to 4, 8, 2, 4, 8
        assert np.array_equal(
            padded.run(z[:rows], labels[:rows]), plain.run(z[:rows], labels[:rows])
        )
    sessions = {size: padded.session_for(size) for size in (2, 4, 8)}
    assert sessions[4] is plain.session  # the first size used takes the session it was given
    assert [sessions[8], sessions[2]] == opened  # the others opened once each, on first use
    unpadded = generator.Generator(
        plain.spec, Engine(plain.session, open_session=open_session), ["cpu"]
    )
    assert unpadded.session_for(5) is plain.session and len(opened) == 2


def test_a_stopped_run_raises_and_the_session_serves_on(tmp_path: Path) -> None:
    path = models.slow_generator(tmp_path / "slow.onnx", iterations=200)
    gen = generator.load(path, ["cpu"], intra_op_threads=1)
    z = np.zeros((2, gen.spec.latent_dim), np.float32)
    stop = generator.RunStop()
    stop.stop()  # before the run: onnxruntime checks it at the first node
    with pytest.raises(Exception, match="terminate"):
        gen.run(z, None, stop)
    assert stop.stopped
    assert gen.run(z, None, generator.RunStop()).shape == (2, 1, 28, 28)


def _profiled(path: Path, prefix: Path) -> tuple[generator.Generator, ort.InferenceSession]:
    """A generator on one CPU session that records every run and node (onnxruntime's profile)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return generator.Generator(contract.inspect(path), Engine(session), ["cpu"]), session


def _profile(session: ort.InferenceSession) -> tuple[list[dict[str, Any]], list[int]]:
    """The runs so far (onnxruntime's `model_run` events) and the batch of each, in order:
    the output Reshape's input is (batch, C·H·W)."""
    events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"),
        key=lambda e: e["ts"],
    )
    reshapes = sorted(
        (e for e in events if e.get("cat") == "Node" and e["args"].get("op_name") == "Reshape"),
        key=lambda e: e["ts"],
    )
    return runs, [e["args"]["input_type_shape"][0]["float"][0] for e in reshapes]


def test_warm_up_runs_every_size_and_measures_throughput(model_dir: Path, tmp_path: Path) -> None:
    gen, session = _profiled(model_dir / "fashion.onnx", tmp_path / "profile")
    sizes = generator.warmup_sizes(8)
    started = time.perf_counter()
    rate = gen.warm_up(sizes)
    elapsed = time.perf_counter() - started
    runs, batches = _profile(session)
    assert sorted(batches) == sizes and len(runs) == len(sizes)
    # images/s at the largest size: at least what the whole warm-up averaged, at most what
    # onnxruntime's own timing of that run (microseconds, less than the call) allows
    largest_run_s = runs[-1]["dur"] / 1e6
    assert sizes[-1] / elapsed <= rate <= sizes[-1] / largest_run_s


def test_warm_up_runs_the_largest_size_on_every_slot_at_once(
    model_dir: Path, tmp_path: Path
) -> None:
    gen, session = _profiled(model_dir / "fashion.onnx", tmp_path / "profile")
    gen.warm_up([1, 2, 4], concurrent=3)
    runs, batches = _profile(session)
    assert batches == [1, 2, 4, 4, 4, 4]
    # the last three runs came from three threads other than the one that ran the sizes
    threads = [e["tid"] for e in runs]
    assert len(set(threads[3:])) == 3 and threads[0] not in threads[3:]


@pytest.mark.parametrize(
    ("limit_s", "fitted", "batches"),
    [
        (60.0, 8, [1, 1, 2, 2, 4, 4, 8, 8]),  # every size fits: each warmed, then timed
        (0.0, 1, [1, 1]),  # none fits: the smallest, and no larger size ever runs
    ],
)
def test_the_largest_batch_within_a_run_time_is_searched_smallest_first(
    model_dir: Path, tmp_path: Path, limit_s: float, fitted: int, batches: list[int]
) -> None:
    gen, session = _profiled(model_dir / "fashion.onnx", tmp_path / "profile")
    assert gen.largest_batch_within([8, 1, 4, 2], limit_s) == fitted
    assert _profile(session)[1] == batches


def test_onnxruntime_load_failure_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = models.unloadable_generator(tmp_path / "broken.onnx")
    assert json.loads(contract.inspect(path).metadata["image_shape"]) == [1, 2, 2]
    with pytest.raises(ModelError) as caught:
        generator.load(path, ["cpu"], intra_op_threads=1)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_file_read_at_start_up_is_not_read_again_unless_it_changed(tmp_path: Path) -> None:
    path = models.mlp_generator(tmp_path / "m.onnx")
    spec = contract.inspect(path)
    assert generator.load(path, ["cpu"], 1, spec=spec).spec is spec  # no second reading
    models.mlp_generator(path, seed=5)  # replaced after gan-serve read it
    with pytest.raises(ModelError, match="changed since start-up"):
        generator.load(path, ["cpu"], 1, spec=spec)
