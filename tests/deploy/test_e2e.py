"""The container end-to-end test: deploy/e2e/e2e.sh builds the image, runs the real compose
stack (api + Prometheus), samples images over HTTP and reads the api's `up` back from
Prometheus. It needs a running Docker engine: `.ci/run` installs docker.io, docker-compose and
debootstrap and starts dockerd (deploy/e2e/start-dockerd.sh). About 3-4 minutes from a clean
machine, most of it debootstrap and pip inside the build."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.deploy.conftest import IN_CI, REPO, require

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


def docker_engine_answers() -> bool:
    docker = require("docker")
    return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_compose_stack_serves_samples_and_prometheus_scrapes_it() -> None:
    if not docker_engine_answers():
        message = "no Docker engine answers (deploy/e2e/start-dockerd.sh starts one)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    require("curl")
    if not os.environ.get("BASE_IMAGE"):
        require("debootstrap")  # e2e.sh builds the local base image with it
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(REPO / "deploy/e2e/e2e.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=880,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "[e2e" in output and "PASS" in output.splitlines()[-1], output[-2000:]
