"""scripts/test.sh, the one set-up-and-test command (CI runs it: that is its real test): it
passes shellcheck, installs every system package the suite uses, never lets a bare `torch`
requirement reach the default index before PyTorch's CPU index had its chance, and on the way
out (pytest failing or not) removes what the suite added to Docker and stops a dockerd it
started, unless --keep. Its pieces run here from the sourced script; the whole of it takes
the whole suite's time."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import IN_CI, require
from tests.support.processes import stopping

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test.sh"
TEXT = SCRIPT.read_text()


def test_the_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (scripts/test.sh installs it)")
    result = subprocess.run(
        [shellcheck, str(SCRIPT), str(REPO / ".ci" / "run")], text=True, capture_output=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_script_is_executable() -> None:
    assert SCRIPT.stat().st_mode & 0o111


def test_every_system_package_the_suite_uses_is_installed() -> None:
    listed = re.search(r"packages=\((.*?)\)", TEXT, flags=re.DOTALL)
    assert listed is not None
    packages = set(listed.group(1).split())
    needed = {
        "python3-venv",  # python3 -m venv on Debian and Ubuntu
        "dataset-fashion-mnist",  # tests/training: the real data set
        "prometheus",  # tests/service/test_metrics.py, tests/deploy: promtool, prometheus
        "shellcheck",  # this test, tests/deploy/test_dockerfile.py
        "curl",  # deploy/e2e/e2e.sh
        "wrk",  # bench/
        "docker.io",  # tests/deploy/test_e2e.py, test_compose.py
        "docker-compose",
        "debootstrap",  # the e2e test's local base image
    }
    assert needed <= packages, needed - packages
    assert "packages+=(chromium chromium-driver)" in TEXT  # tests/service/api/test_gallery.py


def test_torch_comes_from_the_cpu_index_first_with_a_short_timeout() -> None:
    cpu = TEXT.index('--index-url "$cpu_index"')
    default = TEXT.index('pip install -q "$torch"')
    assert cpu < default
    assert "cpu_index=https://download.pytorch.org/whl/cpu" in TEXT
    assert re.search(r"curl [^\n]*--connect-timeout 5 --max-time 20", TEXT)
    assert "CPU build" in TEXT  # it says which build it installed


def test_the_script_installs_the_project_with_its_extras_then_runs_pytest() -> None:
    install = TEXT.index("pip install -q -e '.[train,dev]'")
    run = TEXT.index('python -m pytest "${pytest_args[@]}"')
    assert install < run
    assert "export PIP_NO_COMPILE=1" in TEXT
    assert 'export CI="${CI:-1}"' in TEXT  # a missing tool fails its test instead of skipping


def _sourced(snippet: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`snippet` run by bash after sourcing the script (which then defines its functions and
    runs nothing), as root or not: sudo stays out of it."""
    return subprocess.run(
        ["bash", "-c", f'source scripts/test.sh; SUDO=""; {snippet}'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.mark.parametrize(
    ("argv", "keep", "to_pytest"),
    [
        ([], "0", []),
        (["tests/service", "-x"], "0", ["tests/service", "-x"]),
        (["--keep"], "1", []),
        (["-k", "a b", "--keep", "tests/core"], "1", ["-k", "a b", "tests/core"]),
    ],
)
def test_keep_is_the_scripts_flag_and_every_other_argument_goes_to_pytest(
    argv: list[str], keep: str, to_pytest: list[str]
) -> None:
    done = _sourced(
        f'split_arguments {shlex.join(argv)}; echo "$keep"; printf "%s\\n" "${{pytest_args[@]}}"'
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert printed[0] == keep and [line for line in printed[1:] if line] == to_pytest


@pytest.fixture
def fake_dockerd(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process named dockerd (sleep under that name), as if start-dockerd.sh had started
    it; its pid is in STATE/dockerd.pid."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "dockerd").symlink_to(shutil.which("sleep") or "/bin/sleep")
    process = subprocess.Popen([str(tmp_path / "bin" / "dockerd"), "300"])
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dockerd.pid").write_text(f"{process.pid}\n")
    with stopping(process, timeout_s=5):
        yield process


def _ending_with_pytest_failing(state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The script's way out after a pytest that exits 3."""
    return _sourced(
        f"split_arguments {shlex.join(argv)}; state={shlex.quote(str(state))}; trap finish EXIT; "
        f"{shlex.quote(sys.executable)} -c 'raise SystemExit(3)'"
    )


def test_the_way_out_stops_the_dockerd_started_here_and_keeps_pytests_status(
    tmp_path: Path, fake_dockerd: subprocess.Popen[bytes]
) -> None:
    done = _ending_with_pytest_failing(tmp_path / "state")
    assert done.returncode == 3, done.stdout + done.stderr
    assert fake_dockerd.wait(timeout=5) != 0  # ended by the SIGTERM
    assert f"stopped dockerd (pid {fake_dockerd.pid})" in done.stdout
    assert not (tmp_path / "state").exists()
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"== took \d+ min \d+ s; on disk: \.venv \S+, Docker .+", last), last


def test_with_keep_the_way_out_leaves_the_dockerd_running(
    tmp_path: Path, fake_dockerd: subprocess.Popen[bytes]
) -> None:
    done = _ending_with_pytest_failing(tmp_path / "state", "--keep", "-x")
    assert done.returncode == 3, done.stdout + done.stderr
    assert fake_dockerd.poll() is None
    assert "--keep: the test images and build cache stay" in done.stdout


# -- against a real Docker engine: images made here under names of their own --------------

LEFTOVERS = REPO / "deploy" / "e2e" / "docker-leftovers.sh"


@pytest.fixture
def docker() -> str:
    docker = require("docker")
    if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        message = "no Docker engine answers (deploy/e2e/start-dockerd.sh starts one)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return docker


def _empty_image(docker: str, tag: str) -> str:
    """A new image of no files, tagged `tag`; its id."""
    tar = io.BytesIO()
    tarfile.open(fileobj=tar, mode="w").close()
    done = subprocess.run(
        [docker, "import", "-", tag], input=tar.getvalue(), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


def _exists(docker: str, image: str) -> bool:
    inspect = [docker, "image", "inspect", image]
    return subprocess.run(inspect, capture_output=True, timeout=30).returncode == 0


def test_the_images_a_run_added_go_and_those_there_before_stay(docker: str, tmp_path: Path) -> None:
    name = f"ganserve-leftovers-test-{uuid.uuid4().hex[:12]}"
    before, added = f"{name}:before", f"{name}:added"
    env = {**os.environ, "TEST_IMAGES": f"{added} {before}"}

    def leftovers(command: str) -> subprocess.CompletedProcess[str]:
        argv = [str(LEFTOVERS), command, str(tmp_path / "state")]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    kept = _empty_image(docker, before)
    try:
        assert leftovers("record").returncode == 0
        untagged = _empty_image(docker, added)
        _empty_image(docker, added)  # as a rebuild does, this leaves the first one untagged
        done = leftovers("remove")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"removed image {added}" in done.stdout
        assert f"removed untagged image {untagged}" in done.stdout
        assert not _exists(docker, added) and not _exists(docker, untagged)
        assert _exists(docker, kept)
    finally:
        leftover = [image for image in (before, added) if _exists(docker, image)]
        subprocess.run([docker, "image", "rm", *leftover], capture_output=True, timeout=60)


def test_start_dockerd_names_no_dockerd_to_stop_when_one_was_running(
    docker: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "dockerd.pid"
    start = REPO / "deploy" / "e2e" / "start-dockerd.sh"
    done = subprocess.run([str(start), str(pidfile)], capture_output=True, timeout=60)
    assert done.returncode == 0 and not pidfile.exists()
