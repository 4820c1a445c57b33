"""The PromQL expressions of the Grafana dashboard, the alert rules and the KEDA ScaledObject,
ready to evaluate.

Grafana expressions carry template variables; evaluating them outside Grafana substitutes
what Grafana would: the job, all models, a rate window. Alert expressions get `bool` before
their threshold, so they return data (0 or 1) whether the alert fires or not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from tests.deploy.conftest import DEPLOY

DASHBOARD = DEPLOY / "grafana/dashboards/ganserve.json"
ALERTS = DEPLOY / "prometheus/alerts.yml"
SCALED_OBJECT = DEPLOY / "k8s/overlays/keda/scaledobject.yaml"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": "ganserve", "$model": ".*"}
THRESHOLD = re.compile(r"(==|!=|>=|<=|>|<)(\s*[-+]?[0-9.]+(e[-+]?[0-9]+)?\s*)$")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")

# The service's metric names, plus what Prometheus and prometheus_client add.
CONTRACT = {
    "gan_requests_total",
    "gan_request_duration_seconds",
    "gan_queue_wait_seconds",
    "gan_inference_duration_seconds",
    "gan_batch_size",
    "gan_encode_duration_seconds",
    "gan_queue_depth",
    "gan_images_generated_total",
    "gan_rejected_total",
    "gan_model_info",
    "gan_provider_fallback",
    "gan_ready",
    "gan_workers",
    "gan_workers_ready",
    "gan_process_restarts_total",
    "gan_worker_cpu_seconds_total",
}
STANDARD = {"up", "process_cpu_seconds_total", "process_resident_memory_bytes"}
# Service metrics the autoscalers read and the dashboard does not show.
SCALING = {"gan_admitted_images"}


@dataclass(frozen=True)
class Expr:
    source: str  # where it comes from, for test ids and messages
    text: str  # as written in the file
    promql: str  # as evaluated


def grafana(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    match = LABEL_VALUES.match(expr)  # Grafana's label_values(): one series per label value
    return f"group by ({match.group(2)}) ({match.group(1)})" if match else expr


def dashboard_exprs() -> list[Expr]:
    board = json.loads(DASHBOARD.read_text())
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            label = f"panel {panel['title']!r} {target['refId']}"
            found.append(Expr(label, target["expr"], grafana(target["expr"])))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            found.append(Expr(f"variable ${variable['name']}", query, grafana(query)))
    return found


def alert_exprs() -> list[Expr]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return [
        Expr(f"alert {r['alert']}", r["expr"], THRESHOLD.sub(r"\1 bool\2", r["expr"].strip()))
        for r in rules
    ]


def scaled_object_exprs() -> list[Expr]:
    triggers = yaml.safe_load(SCALED_OBJECT.read_text())["spec"]["triggers"]
    return [
        Expr(f"ScaledObject trigger {i}", t["metadata"]["query"], t["metadata"]["query"])
        for i, t in enumerate(triggers)
        if t["type"] == "prometheus"
    ]


def metric_names(promql: str) -> set[str]:
    """Metric names an expression reads, histogram suffixes folded into the family name."""
    names = set(re.findall(r"\b(gan_\w+|process_\w+|up)\s*[{\[(]", promql))
    names |= set(re.findall(r"\b(gan_\w+|process_\w+)\b", promql))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
