"""deploy/prometheus/: promtool validates the config and the alert rules, and runs the rules'
unit tests (tests/deploy/alerts_test.yml)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, REPO, require

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

PROMETHEUS = DEPLOY / "prometheus"
# alerts.yml promises every expression ends in a comparison with one number, so that
# test_promql.py can evaluate it with `bool` and get data whether the alert fires or not.
ENDS_IN_THRESHOLD = re.compile(r"(==|!=|>=|<=|>|<)\s*[-+]?[0-9.]+(e[-+]?[0-9]+)?\s*$")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_when_they_should_and_only_then() -> None:
    result = promtool("test", "rules", str(REPO / "tests/deploy/alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_issue_asks_for_is_defined() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names == {
        "GanServeTargetDown",
        "GanServeNotReady",
        "GanServeHighLatency",
        "GanServeRejections",
        "GanServeProviderFallback",
        "GanServeWorkerRestarts",
    }


def test_every_alert_is_unit_tested() -> None:
    unit_tests = (REPO / "tests/deploy/alerts_test.yml").read_text()
    tested = set(re.findall(r"alertname: (\w+)", unit_tests))
    assert {rule["alert"] for rule in alert_rules()} <= tested


def test_every_alert_ends_in_a_threshold_and_has_severity_and_summary() -> None:
    for rule in alert_rules():
        assert ENDS_IN_THRESHOLD.search(rule["expr"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_compose_scrape_job_is_the_one_alerts_select() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ganserve"
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    assert config["global"]["scrape_interval"] == "5s"
