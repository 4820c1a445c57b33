"""scripts/test.sh, the one set-up-and-test command (CI runs it: that is its real test): it
passes shellcheck, installs every system package the suite uses, and never lets a bare
`torch` requirement reach the default index before PyTorch's CPU index had its chance."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
    run = TEXT.index('python -m pytest "$@"')
    assert install < run
    assert "export PIP_NO_COMPILE=1" in TEXT
    assert 'export CI="${CI:-1}"' in TEXT  # a missing tool fails its test instead of skipping
