"""The Grafana dashboard and provisioning, statically: well-formed, every query on the
service's metric names, every metric the issue lists on a panel. (test_promql.py evaluates
every query against a real Prometheus.)"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.deploy.promql import (
    CONTRACT,
    DASHBOARD,
    STANDARD,
    alert_exprs,
    dashboard_exprs,
    metric_names,
)

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

BOARD = json.loads(DASHBOARD.read_text())


def test_panel_ids_are_unique_and_every_panel_uses_the_datasource_variable() -> None:
    ids = [panel["id"] for panel in BOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in BOARD["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["description"], panel["title"]


@pytest.mark.parametrize("expr", dashboard_exprs() + alert_exprs(), ids=lambda e: e.source)
def test_every_query_reads_only_the_service_metric_names(expr) -> None:
    names = metric_names(expr.text)
    assert names, expr.text
    assert names <= CONTRACT | STANDARD, names - CONTRACT - STANDARD


def test_every_service_metric_is_on_the_dashboard() -> None:
    shown = set().union(*(metric_names(expr.text) for expr in dashboard_exprs()))
    assert shown >= CONTRACT, CONTRACT - shown


def test_latency_panel_shows_p50_p95_p99() -> None:
    (panel,) = [p for p in BOARD["panels"] if p["title"] == "POST /samples latency"]
    assert [t["legendFormat"] for t in panel["targets"]] == ["p50", "p95", "p99"]


def test_provisioning_points_grafana_at_the_compose_prometheus_and_dashboards() -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert datasources[0]["url"] == "http://prometheus:9090"
    assert datasources[0]["uid"] == BOARD["templating"]["list"][0]["current"]["value"]
    providers = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/ganserve.yml").read_text()
    )["providers"]
    # The folder docker-compose.yml mounts deploy/grafana/dashboards on.
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"
