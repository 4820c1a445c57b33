"""`gan-serve` / `python -m service`: refusing to start, flags over environment, and SIGTERM
(draining at once, losing no request, exit status 0) and Ctrl-C (the same, no traceback) in a
real subprocess."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from service.__main__ import main
from tests.support import onnx_models as models
from tests.support.gan_serve import environment, gan_serve, poll
from tests.support.ports import free_port
from tests.support.processes import stopping

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


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


# -- TLS without a proxy -------------------------------------------------------------------------


def self_signed(where: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now by the system's openssl."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-newkey", "ec"),
            *("-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_serves_https_and_refuses_plain_http(tmp_path: Path, model_dir: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = {
        "GAN_MODEL_DIR": str(model_dir),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_TLS_CERT_FILE": str(cert),
        "GAN_TLS_KEY_FILE": str(key),
    }
    port = free_port()
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    log_path = tmp_path / "server.log"
    trust = ssl.create_default_context(cafile=str(cert))
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment(env), stdout=log, stderr=log)
        with stopping(process, timeout_s=30), httpx.Client(verify=trust, timeout=10) as https:

            def ready() -> bool:
                assert process.poll() is None, log_path.read_text()
                try:
                    return https.get(f"https://127.0.0.1:{port}/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            poll(ready, timeout=60)
            samples = https.post(f"https://127.0.0.1:{port}/samples", params={"n": 2})
            assert samples.status_code == 200 and len(samples.json()["images"]) == 2
            for _ in range(3):  # plain HTTP on the TLS port: no answer, the connection closes
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                    received = b""
                    with suppress(ConnectionResetError):
                        while chunk := sock.recv(65536):
                            received += chunk
                assert not received.startswith(b"HTTP/"), received[:100]
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert https.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert f"https://127.0.0.1:{port}" in output, output


@pytest.mark.parametrize("given", ["GAN_TLS_CERT_FILE", "GAN_TLS_KEY_FILE"])
def test_tls_needs_both_files_or_neither(
    given: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv(given, str(cert if given == "GAN_TLS_CERT_FILE" else key))
    assert main([]) == 2
    line = one_line(capsys.readouterr().err)
    assert "GAN_TLS_CERT_FILE" in line and "GAN_TLS_KEY_FILE" in line, line


def test_a_tls_key_that_does_not_fit_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = self_signed(tmp_path / "other")
    monkeypatch.setenv("GAN_TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("GAN_TLS_KEY_FILE", str(other_key))
    assert main([]) == 2
    line = one_line(capsys.readouterr().err)
    assert "TLS" in line and str(cert) in line, line
