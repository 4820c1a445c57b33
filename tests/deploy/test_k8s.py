"""deploy/k8s/: kustomize renders the base and the GPU overlay, the result validates offline
against the Kubernetes schemas (kubernetes-validate, strict), and keeps the issue's promises:
probes, resources, a grace period that covers the drain, HPA, scrape annotations, a GPU, the
v2 gRPC port. The KEDA overlay has tests of its own (test_keda.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from service.settings import Settings
from tests.deploy.conftest import DEPLOY, require

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

K8S = DEPLOY / "k8s"
VARIANTS = {"base": K8S / "base", "gpu": K8S / "overlays/gpu"}
# The oldest and newest Kubernetes the installed schemas cover.
VERSIONS = ["1.25.0", "1.37.0"]


def render(variant: str, root: Path = K8S) -> list[dict]:
    result = subprocess.run(
        [require("kubectl"), "kustomize", str(root / VARIANTS[variant].relative_to(K8S))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=list(VARIANTS))
def manifests(request: pytest.FixtureRequest) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in render(request.param)} | {"variant": request.param}


def container(manifests: dict) -> dict:
    (api,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return api


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_manifests_validate_against_the_kubernetes_schemas(variant: str, version: str) -> None:
    require("kubernetes-validate")
    import kubernetes_validate

    for doc in render(variant):
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error


def test_kustomize_renders_every_resource(manifests: dict) -> None:
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    } <= manifests.keys()


def test_probes_use_healthz_for_liveness_and_readyz_for_readiness(manifests: dict) -> None:
    api = container(manifests)
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    startup = api["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # loading + warm-up


def test_grace_period_covers_prestop_drain_and_close(manifests: dict) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    pre_stop = int(container(manifests)["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = Settings.model_fields["drain_timeout_s"].default
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5


def test_runs_as_the_images_non_root_user_read_only(manifests: dict) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert container(manifests)["securityContext"]["readOnlyRootFilesystem"] is True


def test_resources_and_threads_are_set(manifests: dict) -> None:
    resources = container(manifests)["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]
    assert int(manifests["ConfigMap"]["data"]["GAN_INTRA_OP_THREADS"]) >= 1


def test_service_and_hpa_target_the_deployment(manifests: dict) -> None:
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert manifests["Service"]["spec"]["selector"].items() <= labels.items()
    assert manifests["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]


def test_grpc_port_8001_is_set_declared_and_served(manifests: dict) -> None:
    ports = {port["name"]: port["containerPort"] for port in container(manifests)["ports"]}
    assert ports == {"http": 8000, "grpc": 8001}
    assert manifests["ConfigMap"]["data"]["GAN_GRPC_PORT"] == "8001"
    served = {
        port["name"]: (port["port"], port["targetPort"])
        for port in manifests["Service"]["spec"]["ports"]
    }
    assert served == {"http": (8000, "http"), "grpc": (8001, "grpc")}


def test_pods_carry_prometheus_scrape_annotations(manifests: dict) -> None:
    annotations = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_only_the_gpu_overlay_asks_for_a_gpu_and_the_gpu_image(manifests: dict) -> None:
    api = container(manifests)
    providers = manifests["ConfigMap"]["data"]["GAN_PROVIDERS"]
    if manifests["variant"] == "gpu":
        assert api["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert api["image"].endswith("-gpu")
        assert providers == "cuda,cpu"
    else:
        assert "nvidia.com/gpu" not in api["resources"]["limits"]
        assert not api["image"].endswith("-gpu")
        assert providers == "cpu"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_setting_a_registry_the_documented_way_changes_the_image(
    variant: str, tmp_path: Path
) -> None:
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root)
    tag = "0.1.0-gpu" if variant == "gpu" else "0.1.0"
    # What `kustomize edit set image ganserve=registry.example.com/ganserve:TAG` writes.
    with (root / VARIANTS[variant].relative_to(K8S) / "kustomization.yaml").open("a") as f:
        f.write(
            f"images:\n  - name: ganserve\n    newName: registry.example.com/ganserve\n"
            f'    newTag: "{tag}"\n'
        )
    (deployment,) = [doc for doc in render(variant, root) if doc["kind"] == "Deployment"]
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    assert api["image"] == f"registry.example.com/ganserve:{tag}"


def test_a_registry_set_in_the_base_never_gives_gpu_pods_the_cpu_image(tmp_path: Path) -> None:
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root)
    with (root / "base/kustomization.yaml").open("a") as f:
        f.write("images:\n  - name: ganserve\n    newName: registry.example.com/ganserve\n")
    (deployment,) = [doc for doc in render("gpu", root) if doc["kind"] == "Deployment"]
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    assert api["image"].endswith("-gpu")
