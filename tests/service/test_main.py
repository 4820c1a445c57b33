"""`gan-serve` / `python -m service`: refusing to start, flags over environment, and SIGTERM
(draining at once, losing no request, exit status 0) and Ctrl-C (the same, no traceback) in a
real subprocess."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.__main__ import main
from tests.support import onnx_models as models
from tests.support.gan_serve import gan_serve, poll


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
    env = {
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_MAX_BATCH": "4",
        "GAN_RUN_SLOTS": "1",  # one run at a time: the other requests wait in the queue
        "GAN_DRAIN_TIMEOUT_S": "30",
        "GAN_PORT": "1",  # the --port flag wins over the environment
        "GAN_LOG_LEVEL": "warning",
    }

    with gan_serve(env, tmp_path / "server.log") as served:
        url = served.url

        def all_received_some_queued() -> bool:
            # Every request is in the server (admitted: 3 x 4 images, held until answered) and
            # one is still queued behind the running one: SIGTERM now must drain both kinds.
            admitted = served.metric("gan_admitted_images", model="slow")
            return admitted == 12 and served.metric("gan_queue_depth", model="slow") >= 4

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
            served.process.send_signal(signal.SIGTERM)
            draining = poll(lambda: (r := httpx.get(url + "/readyz")).status_code == 503 and r)
            assert draining.json()["status"] == "draining"
            refused = httpx.post(url + "/samples", params={"n": 1})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "draining"
            assert served.status("/healthz") == 200
            responses = [r.result() for r in requests]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert all(len(r.content) > 4 * 28 * 28 for r in responses)
        assert served.process.wait(timeout=60) == 0


# -- Ctrl-C (newcomer) ---------------------------------------------------------------------------


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_drains_and_exits_without_a_traceback(
    tmp_path: Path, model_dir: Path, presses: int
) -> None:
    log_path = tmp_path / "server.log"
    with gan_serve({"GAN_MODEL_DIR": str(model_dir), "GAN_PROVIDERS": "cpu"}, log_path) as served:
        for _ in range(presses):
            served.process.send_signal(signal.SIGINT)
        code = served.process.wait(timeout=60)
    output = log_path.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "drained" in output
    # One Ctrl-C is a drain like SIGTERM: exit status 0. A second one may land while the
    # shutdown is still under way, which then ends as an interrupted process would (130).
    assert code == 0 if presses == 1 else code in (0, 130)
