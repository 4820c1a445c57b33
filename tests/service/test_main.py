"""`gan-serve` / `python -m service`: refusing to start, flags over environment, and SIGTERM
(draining at once, losing no request, exit status 0) and Ctrl-C (the same, no traceback) in a
real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.__main__ import main
from tests.service.conftest import metric_samples, poll
from tests.support import onnx_models as models
from tests.support.ports import free_port


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_no_models_is_one_line_and_a_nonzero_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAN_MODEL_DIR", str(tmp_path))
    assert main([]) != 0
    line = one_line(capsys.readouterr().err)
    assert "no models" in line and str(tmp_path) in line


def test_a_non_generator_file_is_refused_with_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    models.mlp_generator(tmp_path / "good.onnx")
    bad = models.not_a_generator(tmp_path / "relu.onnx")
    monkeypatch.setenv("GAN_MODEL_DIR", str(tmp_path))
    assert main([]) != 0
    assert str(bad) in one_line(capsys.readouterr().err)


def test_an_invalid_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAN_MAX_BATCH", "0")
    assert main([]) != 0
    assert "GAN_MAX_BATCH" in one_line(capsys.readouterr().err)


def test_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--host" in out and "--port" in out and "GAN_" in out


def test_sigterm_drains_queued_and_running_requests_then_exits_0(
    tmp_path: Path, slow_iterations: int
) -> None:
    models.slow_generator(tmp_path / "slow.onnx", iterations=slow_iterations)
    port = free_port()
    env = {
        **os.environ,
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_MAX_BATCH": "4",
        "GAN_RUN_SLOTS": "1",  # one run at a time: the other requests wait in the queue
        "GAN_DRAIN_TIMEOUT_S": "30",
        "GAN_PORT": "1",  # the --port flag wins over the environment
        "GAN_LOG_LEVEL": "warning",
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def status(path: str) -> int | None:
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        try:
            return httpx.get(url + path, timeout=5).status_code
        except httpx.TransportError:
            return None

    def gauge(name: str) -> float:
        text = httpx.get(url + "/metrics").text
        return metric_samples(text).get((name, (("model", "slow"),)), 0.0)

    def all_received_some_queued() -> bool:
        # Every request is in the server (admitted: 3 x 4 images, held until answered) and
        # one is still queued behind the running one: SIGTERM now must drain both kinds.
        return gauge("gan_admitted_images") == 12 and gauge("gan_queue_depth") >= 4

    try:
        poll(lambda: status("/readyz") == 200, timeout=60)
        with ThreadPoolExecutor(3) as pool:
            requests = [
                pool.submit(
                    httpx.post,
                    url + "/samples",
                    params={"n": 4, "seed": s, "format": "npy"},
                    timeout=60,
                )
                for s in range(3)
            ]
            poll(all_received_some_queued)
            process.send_signal(signal.SIGTERM)
            draining = poll(lambda: (r := httpx.get(url + "/readyz")).status_code == 503 and r)
            assert draining.json()["status"] == "draining"
            refused = httpx.post(url + "/samples", params={"n": 1})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "draining"
            assert status("/healthz") == 200
            responses = [r.result() for r in requests]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert all(len(r.content) > 4 * 28 * 28 for r in responses)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


# -- Ctrl-C (newcomer, issue 12) ---------------------------------------------------------------


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_drains_and_exits_without_a_traceback(
    tmp_path: Path, model_dir: Path, presses: int
) -> None:
    port = free_port()
    env = {**os.environ, "GAN_MODEL_DIR": str(model_dir), "GAN_PROVIDERS": "cpu"}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/readyz"

            def ready() -> bool:
                assert process.poll() is None, log_path.read_text()
                try:
                    return httpx.get(url, timeout=5).status_code == 200
                except httpx.TransportError:
                    return False

            poll(ready, timeout=60)
            for _ in range(presses):
                process.send_signal(signal.SIGINT)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log_path.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "drained" in output
    # One Ctrl-C is a drain like SIGTERM: exit status 0. A second one may land while the
    # shutdown is still under way, which then ends as an interrupted process would (130).
    assert code == 0 if presses == 1 else code in (0, 130)
