"""`gan-serve` refuses to start with one line naming what the user set: a setting's flag or
variable (never pydantic's `GAN_PROVIDERS.0`), or a port it cannot listen on (exit status 2,
nothing logged after)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from service.__main__ import main


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("GAN_"):
            monkeypatch.delenv(key)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_bad_flag_value_is_reported_as_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "99999"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--port 99999" in line and "65535" in line
    assert "GAN_PORT" not in line


def test_a_bad_list_element_names_the_variable_without_an_index(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAN_PROVIDERS", "tpu,cpu")
    assert main([]) == 2
    line = one_line(capsys.readouterr().err)
    assert "GAN_PROVIDERS=tpu,cpu" in line and "'tpu'" in line and "'auto'" in line
    assert "GAN_PROVIDERS.0" not in line and ".0" not in line


def test_a_bad_variable_shows_the_value_as_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAN_MAX_BATCH", "0")
    assert main([]) == 2
    assert "invalid setting GAN_MAX_BATCH=0: " in one_line(capsys.readouterr().err)


def refused_start(model_dir: Path, flags: list[str], env: dict[str, str]) -> str:
    """Run `gan-serve --host 127.0.0.1 FLAGS` on `model_dir` with `env` added: it must exit 2
    with nothing on stdout and one line on stderr, returned."""
    done = subprocess.run(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", *flags],
        env={**os.environ, "GAN_MODEL_DIR": str(model_dir), "GAN_PROVIDERS": "cpu", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    return one_line(done.stderr)


@pytest.fixture
def listening() -> socket.socket:
    """A socket listening on a loopback port: that port is in use."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_a_port_in_use_is_one_line_and_exit_2_with_nothing_logged_after(
    listening: socket.socket, model_dir: Path, how: str
) -> None:
    port = listening.getsockname()[1]
    flags = ["--port", str(port)] if how == "flag" else []
    env = {"GAN_PORT": str(port)} if how == "variable" else {}
    with listening:
        line = refused_start(model_dir, flags, env)
    assert line.startswith(f"gan-serve: error: cannot listen on 127.0.0.1:{port} ")
    assert "address already in use" in line
    assert (f"--port {port}" if how == "flag" else f"GAN_PORT={port}") in line


def test_an_unknown_host_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "no-such-host.invalid", "--port", "8000"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "cannot listen on no-such-host.invalid:8000 (--host no-such-host.invalid" in line


def test_a_grpc_port_in_use_is_one_line_and_exit_2(
    listening: socket.socket, model_dir: Path
) -> None:
    grpc_port = listening.getsockname()[1]
    with listening:
        line = refused_start(model_dir, ["--port", "0"], {"GAN_GRPC_PORT": str(grpc_port)})
    assert line == (
        f"gan-serve: error: cannot listen on 127.0.0.1:{grpc_port} "
        f"(GAN_GRPC_PORT={grpc_port}): address already in use"
    )
