"""deploy/k8s/overlays/keda/: kustomize renders the base with a KEDA ScaledObject in place of
the CPU HPA. The Kubernetes objects validate strictly against the Kubernetes schemas; KEDA's
CRD schema is not available offline, so the ScaledObject's structure is checked here: it
targets the base Deployment, reads only the service's metrics, and its threshold is the
benchmark's saturation point (test_promql.py runs its query against a real Prometheus)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.deploy.conftest import (
    BENCH_COMMAND,
    DEPLOY,
    IMAGES_PER_REQUEST,
    SATURATION_REQUESTS,
    require,
)
from tests.deploy.promql import CONTRACT, SCALED_OBJECT, SCALING, metric_names

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

KEDA = DEPLOY / "k8s/overlays/keda"
VERSIONS = ["1.25.0", "1.37.0"]  # as test_k8s.py


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    result = subprocess.run(
        [require("kubectl"), "kustomize", str(KEDA)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(rendered: list[dict], kind: str) -> dict:
    (doc,) = [doc for doc in rendered if doc["kind"] == kind]
    return doc


@pytest.mark.parametrize("version", VERSIONS)
def test_kubernetes_objects_validate_against_the_schemas(
    rendered: list[dict], version: str
) -> None:
    require("kubernetes-validate")
    import kubernetes_validate

    for doc in rendered:
        if doc["kind"] != "ScaledObject":  # a CRD: no schema offline
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_scaled_object_replaces_the_cpu_hpa(rendered: list[dict]) -> None:
    kinds = [doc["kind"] for doc in rendered]
    assert "HorizontalPodAutoscaler" not in kinds  # KEDA makes its own
    assert kinds.count("ScaledObject") == 1
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"} <= set(kinds)


def test_the_scaled_object_targets_the_base_deployment(rendered: list[dict]) -> None:
    scaled = one(rendered, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    deployment = one(rendered, "Deployment")
    assert (target["apiVersion"], target.get("kind", "Deployment")) == ("apps/v1", "Deployment")
    assert target["name"] == deployment["metadata"]["name"]
    spec = scaled["spec"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    window = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert window["stabilizationWindowSeconds"] >= 300  # as the base HPA: warm-ups are dear


def test_the_query_reads_only_the_service_metrics(rendered: list[dict]) -> None:
    (trigger,) = [
        t for t in one(rendered, "ScaledObject")["spec"]["triggers"] if t["type"] == "prometheus"
    ]
    names = metric_names(trigger["metadata"]["query"])
    assert names == {"gan_admitted_images"}
    assert names <= CONTRACT | SCALING
    assert 'job="ganserve"' in trigger["metadata"]["query"]  # the job alerts.yml expects
    assert trigger["metricType"] == "AverageValue"  # the threshold is per pod


def test_the_service_exports_the_scaling_metric() -> None:
    # The names the autoscalers read, as the service registers them (test_promql.py sees them
    # scraped).
    source = (DEPLOY.parent / "service/metrics.py").read_text()
    for name in SCALING:
        assert f'"{name}"' in source, name


def test_the_threshold_is_the_benchmarks_saturation_point(rendered: list[dict]) -> None:
    triggers = {t["type"]: t for t in one(rendered, "ScaledObject")["spec"]["triggers"]}
    assert int(triggers["prometheus"]["metadata"]["threshold"]) == (
        SATURATION_REQUESTS * IMAGES_PER_REQUEST
    )
    assert triggers["cpu"]["metricType"] == "Utilization"
    # The derivation is written next to the number.
    assert (
        " ".join(SCALED_OBJECT.read_text().replace("#", " ").split()).count(
            " ".join(BENCH_COMMAND.split())
        )
        == 1
    )
