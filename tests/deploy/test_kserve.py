"""deploy/kserve/: the two InferenceServices (v2 over HTTP, v2 over gRPC) that kustomize
renders. KServe's and Knative's CRD schemas are not available offline, so the structure is
checked here: the predictor's pod part validates strictly against the Kubernetes Pod schema,
Knative's container rules (from its validation code) hold, and the fields keep the issue's
promises: v2, probes on the v2 health routes, one port each with the name that picks the
protocol, the image, settings, resources and security of deploy/k8s/base, and a concurrency
target equal to the benchmark's saturation point."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import BENCH_COMMAND, DEPLOY, SATURATION_REQUESTS, require

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

KSERVE = DEPLOY / "kserve"
BASE = DEPLOY / "k8s/base"
VERSIONS = ["1.25.0", "1.37.0"]  # as test_k8s.py
# name -> (Knative port name, container port): Knative routes one port, named for its protocol.
SERVICES = {"ganserve": ("http1", 8000), "ganserve-grpc": ("h2c", 8001)}


def kustomize(path: str) -> list[dict]:
    result = subprocess.run(
        [require("kubectl"), "kustomize", path], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in kustomize(str(KSERVE))}


@pytest.fixture(scope="module")
def base_container() -> dict:
    (deployment,) = [d for d in kustomize(str(BASE)) if d["kind"] == "Deployment"]
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    return api


def base_settings() -> dict[str, str]:
    lines = (BASE / "config.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def container(service: dict) -> dict:
    (predictor,) = service["spec"]["predictor"]["containers"]
    return predictor


def test_both_protocols_are_inference_services(services: dict[str, dict]) -> None:
    assert services.keys() == SERVICES.keys()
    for service in services.values():
        assert service["apiVersion"] == "serving.kserve.io/v1beta1"
        assert service["kind"] == "InferenceService"


@pytest.mark.parametrize("name", list(SERVICES))
def test_the_custom_predictor_speaks_v2(services: dict[str, dict], name: str) -> None:
    # A custom predictor has no protocolVersion field; KServe reads its PROTOCOL variable.
    predictor = container(services[name])
    assert predictor["name"] == "kserve-container"
    assert {"name": "PROTOCOL", "value": "v2"} in predictor["env"]


@pytest.mark.parametrize("name", list(SERVICES))
def test_one_port_named_for_its_protocol(services: dict[str, dict], name: str) -> None:
    (port,) = container(services[name])["ports"]  # Knative routes exactly one
    assert (port["name"], port["containerPort"]) == SERVICES[name]
    assert port.get("protocol", "TCP") == "TCP"


@pytest.mark.parametrize("name", list(SERVICES))
def test_probes_use_the_v2_health_routes_over_http(services: dict[str, dict], name: str) -> None:
    predictor = container(services[name])
    live, ready = predictor["livenessProbe"]["httpGet"], predictor["readinessProbe"]["httpGet"]
    assert (live["path"], ready["path"]) == ("/v2/health/live", "/v2/health/ready")
    # The routes are HTTP, on 8000 whichever port Knative routes, by number (Knative refuses
    # a named probe port other than the serving port's name).
    assert live["port"] == ready["port"] == 8000


@pytest.mark.parametrize("name", list(SERVICES))
def test_knatives_container_rules_hold(services: dict[str, dict], name: str) -> None:
    predictor = services[name]["spec"]["predictor"]
    api = container(services[name])
    assert not {"lifecycle", "startupProbe", "stdin", "tty"} & api.keys()
    assert not {"securityContext", "terminationGracePeriodSeconds"} & predictor.keys()
    mounted = {mount["name"] for mount in api.get("volumeMounts", [])}
    assert mounted == {volume["name"] for volume in predictor.get("volumes", [])}
    assert "PORT" not in {env["name"] for env in api["env"]}  # reserved by Knative


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", list(SERVICES))
def test_the_pod_part_validates_against_the_kubernetes_schema(
    services: dict[str, dict], name: str, version: str
) -> None:
    require("kubernetes-validate")
    import kubernetes_validate

    predictor = services[name]["spec"]["predictor"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": predictor["labels"]},
        "spec": {key: predictor[key] for key in ("containers", "volumes")},
    }
    kubernetes_validate.validate(pod, version, strict=True)  # raises on any error


@pytest.mark.parametrize("name", list(SERVICES))
def test_image_settings_resources_and_security_are_the_base_deployments(
    services: dict[str, dict], name: str, base_container: dict
) -> None:
    api = container(services[name])
    assert api["image"] == base_container["image"]
    assert api["imagePullPolicy"] == base_container["imagePullPolicy"]
    assert api["resources"] == base_container["resources"]
    env = {e["name"]: e["value"] for e in api["env"] if e["name"].startswith("GAN_")}
    assert env == base_settings()
    assert env["GAN_GRPC_PORT"] == "8001"
    security = api["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    for key, value in base_container["securityContext"].items():
        assert security[key] == value, key
    assert api["volumeMounts"] == base_container["volumeMounts"]


@pytest.mark.parametrize("name", list(SERVICES))
def test_scales_on_concurrency_at_the_benchmarks_saturation_point(
    services: dict[str, dict], name: str
) -> None:
    predictor = services[name]["spec"]["predictor"]
    assert predictor["scaleMetric"] == "concurrency"
    assert predictor["scaleTarget"] == SATURATION_REQUESTS
    assert 1 <= predictor["minReplicas"] < predictor["maxReplicas"]
    # The derivation is written next to the number.
    text = (KSERVE / f"inferenceservice-{'grpc' if 'grpc' in name else 'http'}.yaml").read_text()
    assert " ".join(BENCH_COMMAND.split()) in " ".join(text.replace("#", " ").split())


def test_docs_give_the_derivation_and_its_command() -> None:
    docs = (DEPLOY.parent / "docs/deploy.md").read_text()
    section = docs.split("## KServe and autoscaling", 1)[1].split("\n## ", 1)[0]
    assert BENCH_COMMAND in section
    assert f"scaleTarget: {SATURATION_REQUESTS}" in section
    assert "deploy/k8s/overlays/keda" in section and "deploy/kserve" in section


def test_setting_a_registry_the_documented_way_changes_the_image(tmp_path: Path) -> None:
    root = tmp_path / "kserve"
    root.mkdir()
    for path in KSERVE.iterdir():
        (root / path.name).write_text(path.read_text())
    # What `kustomize edit set image ganserve=registry.example.com/ganserve:0.1.0` writes.
    with (root / "kustomization.yaml").open("a") as f:
        f.write("images:\n  - name: ganserve\n    newName: registry.example.com/ganserve\n")
        f.write('    newTag: "0.1.0"\n')
    for service in kustomize(str(root)):
        assert container(service)["image"] == "registry.example.com/ganserve:0.1.0"
