"""README's set-up commands are the ones CI runs, and the CLIs it names exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = "scripts/test.sh"
    assert test_command + "\n" in _code_blocks(README)  # a block of that one line
    ci_lines = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == test_command


def test_readme_serve_command_uses_the_console_script() -> None:
    assert any("pip install -e . && gan-serve" in block for block in _code_blocks(README))


def test_every_console_script_the_readme_uses_is_declared() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    used = set(re.findall(r"\b(gan-[a-z]+)\b", README))
    assert used <= set(scripts), used - set(scripts)
    assert {"gan-train", "gan-export", "gan-evaluate", "gan-serve"} <= set(scripts)


def test_readme_gives_compose_v2_and_docker_compose_1_29_commands() -> None:
    # docker-compose 1.29 has no --wait: it prints its help and exits 0, starting nothing.
    blocks = "".join(_code_blocks(README))
    assert "docker compose up --detach --wait" in blocks
    assert "docker-compose up --detach && until curl -fs localhost:8000/readyz" in blocks
    for text in (README, (REPO / "docs" / "deploy.md").read_text()):
        assert not re.search(r"docker-compose [^\n`]*--wait", text)


def test_deploy_offline_notes_install_what_they_use() -> None:
    deploy = (REPO / "docs" / "deploy.md").read_text()
    offline = deploy[deploy.index("**Air-gapped") : deploy.index("## Monitoring")]
    install = re.search(r"apt-get install -y ([^\n]*)", offline)
    assert install is not None
    assert {"docker.io", "docker-compose", "debootstrap"} <= set(install.group(1).split())


def test_readme_gpu_step_swaps_onnxruntime_for_the_gpu_build() -> None:
    step = "pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu>=1.18'"
    assert any(step in block for block in _code_blocks(README))
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9._-]+", d).group(0).lower() for d in dependencies}  # type: ignore[union-attr]
    assert "onnxruntime" in names and "onnxruntime-gpu" not in names


def test_readme_shows_the_gallery_screenshot() -> None:
    assert "](docs/gallery.png)" in README
    assert (REPO / "docs" / "gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_starts_with_its_install_line_and_the_cpu_build_the_test_script_uses() -> None:
    training = README[README.index("## Training") :]
    assert _code_blocks(training)[0] == "pip install -e '.[train]'\n"
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    torch = next(r for r in extra["train"] if re.match(r"torch\b", r))
    index = re.search(r"cpu_index=(\S+)", (REPO / "scripts" / "test.sh").read_text())
    assert index is not None
    cpu = f"pip install --index-url {index.group(1)} '{torch}' && pip install -e '.[train]'"
    assert cpu in _code_blocks(training)[1]


def test_the_test_command_section_says_what_it_leaves_and_how_to_keep_it() -> None:
    section = README[README.index("scripts/test.sh\n") : README.index("Then ask for samples")]
    script = (REPO / "scripts" / "test.sh").read_text()
    for image in ("ganserve:e2e", "ganserve-base:bookworm", "ganserve-prometheus:debian"):
        assert image in section
        assert image in (REPO / "deploy" / "e2e" / "docker-leftovers.sh").read_text()
    assert "--keep" in section and "= --keep ]" in script
    assert re.search(r"about [\d.]+ GB", section)
