"""The shipped generators: each loads, matches its model card, and gan-serve with no
configuration serves them all with fashion-cdcgan as the default."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from core import contract
from evaluation.card import regenerate
from tests.support.gan_serve import gan_serve

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
SHIPPED = ("fashion-cdcgan", "fashion-mlp-gan")
MAX_BYTES = 20 * 1024 * 1024


def card_facts(name: str) -> dict[str, str]:
    """The `| field | value |` table at the top of models/<name>.md."""
    text = (MODELS / f"{name}.md").read_text()
    return dict(re.findall(r"^\| (\w+) \| `([^`]*)` \|$", text, flags=re.MULTILINE))


@pytest.mark.parametrize("name", SHIPPED)
def test_file_matches_its_card(name: str) -> None:
    path = MODELS / f"{name}.onnx"
    facts = card_facts(name)
    assert facts["file"] == path.name
    assert path.stat().st_size <= MAX_BYTES
    assert hashlib.sha256(path.read_bytes()).hexdigest() == facts["sha256"]
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    card_keys = set(facts) - {"file", "sha256"}
    assert card_keys >= {"name", "arch", "conditional", "epochs", "steps", "dataset"}
    for key in card_keys:
        assert metadata[key] == facts[key], key


@pytest.mark.parametrize("name", SHIPPED)
def test_card_links_existing_grid_curves_and_report(name: str) -> None:
    text = (MODELS / f"{name}.md").read_text()
    for artefact in ("grid.png", "curves.png", "report.json"):
        assert f"{name}/{artefact}" in text
        assert (MODELS / name / artefact).stat().st_size > 0
    report = json.loads((MODELS / name / "report.json").read_text())
    assert report["model"]["name"] == name
    assert set(report["rows"]) >= {"model", "real", "untrained"}


@pytest.mark.parametrize("name", SHIPPED)
def test_card_evaluation_table_is_generated_from_its_report(name: str) -> None:
    card = MODELS / f"{name}.md"
    # stale: rerun `python -m evaluation.card models/NAME.md` after a new gan-evaluate report
    assert regenerate(card) == card.read_text()


@pytest.mark.parametrize("name", SHIPPED)
def test_file_passes_the_contract_reader(name: str) -> None:
    spec = contract.inspect(MODELS / f"{name}.onnx")
    facts = card_facts(name)
    assert (spec.name, spec.arch, str(spec.conditional).lower()) == (
        facts["name"],
        facts["arch"],
        facts["conditional"],
    )
    assert spec.sha256 == facts["sha256"] and spec.image_shape == (1, 28, 28)


@pytest.mark.parametrize("name", SHIPPED)
def test_file_runs_and_outputs_images_in_range(name: str) -> None:
    session = ort.InferenceSession(str(MODELS / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"z": np.random.default_rng(0).standard_normal((4, 100)).astype(np.float32)}
    if any(i.name == "label" for i in session.get_inputs()):
        feeds["label"] = np.arange(4, dtype=np.int64)
    (images,) = session.run(["image"], feeds)
    assert images.shape == (4, 1, 28, 28)
    # tanh in float32 may round a hair past ±1; consumers clip
    assert images.min() >= -1.0 - 1e-6 and images.max() <= 1.0 + 1e-6
    assert images.std() > 0.1  # trained, not a constant image


def test_gan_serve_without_configuration_serves_the_shipped_models(tmp_path: Path) -> None:
    env = {"GAN_LOG_LEVEL": "warning"}  # logging only; the models and limits stay default
    with gan_serve(env, tmp_path / "server.log", cwd=REPO, ready_timeout_s=120) as served:
        url = served.url
        listed = httpx.get(f"{url}/models").json()
        models = {m["name"]: m for m in listed["models"]}
        assert set(models) == set(SHIPPED)
        assert listed["default"] == "fashion-cdcgan"
        response = httpx.post(f"{url}/samples", params={"n": 2, "label": "sneaker"}, timeout=30)
        assert response.status_code == 200
        assert response.headers["X-Model"] == "fashion-cdcgan"
        assert [image["label"] for image in response.json()["images"]] == [7, 7]
