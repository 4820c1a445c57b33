"""The Dockerfile and what goes into the build: hadolint, the image's promises as written in
the file, the requirement list per onnxruntime flavour, .dockerignore, the shell scripts.
(tests/deploy/test_e2e.py builds the image and checks the same promises inside it.)"""

from __future__ import annotations

import re
import runpy
import subprocess
import tomllib

import pytest

from tests.deploy.conftest import DEPLOY, REPO, require

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

DOCKERFILE = (REPO / "Dockerfile").read_text()
SCRIPTS = sorted(DEPLOY.rglob("*.sh"))


def stage(name: str) -> str:
    """The text of one build stage, from its FROM line to the next FROM."""
    match = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.M | re.S)
    assert match, f"no stage {name}"
    return match.group(1)


@pytest.mark.parametrize("path", ["Dockerfile", "deploy/images/prometheus.Dockerfile"])
def test_hadolint_passes(path: str) -> None:
    result = subprocess.run(
        [require("hadolint"), path], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_build_arguments_with_public_defaults() -> None:
    assert "ARG BASE_IMAGE=python:3.11-slim\n" in DOCKERFILE
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+-cudnn-runtime-\S+$", DOCKERFILE, re.M)


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_runtime_stage_is_non_root_serves_8000_and_ships_the_models(target: str) -> None:
    text = stage(target)
    assert "USER 10001:10001" in text
    assert "EXPOSE 8000 8001" in text
    assert "COPY models/ /opt/ganserve/models/" in text
    assert "GAN_MODEL_DIR=/opt/ganserve/models" in text
    assert 'CMD ["gan-serve", "--host", "0.0.0.0", "--port", "8000"]' in text
    # Only the venv comes from the builder: no pip cache, no sources, no CA bundle.
    assert re.findall(r"COPY --from=(\S+)", text) == [f"{target}-builder"]


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_builder_installs_only_its_own_onnxruntime_flavour(target: str) -> None:
    assert f"RUN sh deploy/docker/install.sh deps {target}\n" in stage(f"{target}-builder")


def test_default_target_is_the_cpu_image_and_cpu_stages_come_first() -> None:
    froms = re.findall(r"^FROM (.*)$", DOCKERFILE, re.M)
    assert froms[-1] == "cpu"
    names = [line.split(" AS ")[-1] for line in froms[:-1]]
    assert names.index("cpu") < names.index("gpu-base")  # the classic builder stops at cpu


def test_no_host_path_or_secret_is_baked_into_the_dockerfile() -> None:
    assert "/etc/ssl" not in DOCKERFILE
    assert "ca-certificates.crt" not in DOCKERFILE
    assert not re.search(r"^(ARG|ENV) .*(PASSWORD|TOKEN|SECRET)", DOCKERFILE, re.M | re.I)


def test_build_ca_folder_is_git_ignored_except_its_readme() -> None:
    lines = (DEPLOY / "docker/build-ca/.gitignore").read_text().splitlines()
    patterns = [line for line in lines if not line.startswith("#")]
    assert patterns == ["*", "!.gitignore", "!README.md"]


@pytest.fixture(scope="module")
def requirements() -> dict:
    module = runpy.run_path(str(DEPLOY / "docker/requirements.py"))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {flavour: module["requirements"](pyproject, flavour) for flavour in ("cpu", "gpu")}


def names(lines: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9._-]+", line).group(0).lower() for line in lines}


def test_cpu_image_gets_the_cpu_onnxruntime_only(requirements: dict) -> None:
    assert "onnxruntime" in names(requirements["cpu"])
    assert "onnxruntime-gpu" not in names(requirements["cpu"])


def test_gpu_image_gets_onnxruntime_gpu_only(requirements: dict) -> None:
    assert "onnxruntime-gpu" in names(requirements["gpu"])
    assert "onnxruntime" not in names(requirements["gpu"])


def test_images_get_every_other_base_dependency_and_no_torch(requirements: dict) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    others = names(pyproject["project"]["dependencies"]) - {"onnxruntime", "onnxruntime-gpu"}
    for flavour, lines in requirements.items():
        assert names(lines) - {"onnxruntime", "onnxruntime-gpu"} == others, flavour
        assert "torch" not in names(lines)


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allowlist: runs/, caches, tests, .git never reach the daemon
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "core", "service", "models", "deploy/docker"}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE, re.M))
    assert {path.rstrip("/") for path in copied} <= allowed


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(REPO)) for p in SCRIPTS])
def test_shell_scripts_pass_shellcheck(script) -> None:
    result = subprocess.run(
        [require("shellcheck"), "--severity=warning", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
