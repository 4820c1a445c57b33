"""Every PromQL expression of the Grafana dashboard, the alert rules and the KEDA ScaledObject,
evaluated by a real Prometheus that scraped a real service under load: each must run without
error and return data. A typo in a metric or label name, or a label the service does not set,
fails here.

The service is `python -m service` on a tiny model (tests/support/onnx_models.py) on a free
loopback port; Prometheus is Debian's binary with deploy/prometheus/prometheus.yml, its
target moved to that port and its intervals to 1 s, so the alert rules load as shipped.
The load is a few client threads, bounded in time and count, all on loopback.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.conftest import DEPLOY, REPO, require
from tests.deploy.promql import Expr, alert_exprs, dashboard_exprs, scaled_object_exprs
from tests.support.gan_serve import gan_serve
from tests.support.gan_serve import poll as support_poll
from tests.support.ports import free_port
from tests.support.processes import stopping

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

LOAD_THREADS = 3
LOAD_MAX_S = 120.0  # hard stop, even if a test hangs
LOAD_MAX_REQUESTS = 20_000  # per thread
FORMATS = ("png", "json", "npy")  # every encoder, so gan_encode_duration_seconds has each


def poll(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    return support_poll(condition, timeout, what, interval=0.25, tolerate=(httpx.HTTPError,))


@contextmanager
def running(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """`args` as a process writing to `log`, stopped (SIGTERM, then SIGKILL) on leaving."""
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    with stopping(process, timeout_s=40):
        yield process


class Load:
    """Client threads posting /samples with varied n and every format until stopped."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.done = threading.Event()
        self.statuses: dict[int, int] = {}
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(LOAD_THREADS)]
        self.lock = threading.Lock()

    def run(self, index: int) -> None:
        deadline = time.monotonic() + LOAD_MAX_S
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            for i in range(LOAD_MAX_REQUESTS):
                if self.done.is_set() or time.monotonic() > deadline:
                    return
                n = (1, 8, 16, 64)[(i + index) % 4]
                fmt = FORMATS[(i + index) % len(FORMATS)]
                status = client.post("/samples", params={"n": n, "format": fmt}).status_code
                with self.lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                if i % 20 == 0:
                    client.get("/models")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()


def prometheus_config(directory: Path, target: str) -> Path:
    """deploy/prometheus/prometheus.yml, scraping `target` every second."""
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus_under_load(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[httpx.Client]:
    """A Prometheus API client, once the service has been scraped under load for a while;
    the load keeps running until the module's tests are done."""
    prometheus = require("prometheus")
    work = tmp_path_factory.mktemp("promql")
    env = {
        "GAN_MODEL_DIR": str(tiny_model_dir),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_ACCESS_LOG": "false",
        "GAN_WORKERS": "2",  # the deploy default is one per core: scrape the merged series
    }
    try:
        with (
            gan_serve(env, work / "service.log", cwd=REPO, stop_timeout_s=40) as service,
            running(
                [
                    prometheus,
                    f"--config.file={prometheus_config(work, f'127.0.0.1:{service.port}')}",
                    f"--storage.tsdb.path={work / 'data'}",
                    # chosen once the service listens: two ports picked while both are
                    # free may be the same one
                    f"--web.listen-address=127.0.0.1:{(prom_port := free_port())}",
                    "--log.level=warn",
                ],
                work / "prometheus.log",
            ),
            Load(service.url) as load,
            httpx.Client(base_url=f"http://127.0.0.1:{prom_port}/api/v1", timeout=10) as client,
        ):

            def query(promql: str) -> list[dict]:
                return client.get("/query", params={"query": promql}).json()["data"]["result"]

            # Prometheus answers its API with plain-text 503s until it is ready.
            ready = f"http://127.0.0.1:{prom_port}/-/ready"
            poll(lambda: httpx.get(ready).status_code == 200, 30, "Prometheus to be ready")
            # Enough scrapes under load that every rate() window holds several samples.
            poll(lambda: query('up{job="ganserve"} == 1'), 30, "the first scrape")
            poll(
                lambda: query('count_over_time(gan_ready{job="ganserve"}[1m]) >= 8'),
                60,
                "8 scrapes",
            )
            # lastEvaluation reads "0001-01-01T00:00:00Z" until a rule's first evaluation.
            poll(
                lambda: all(
                    r["health"] == "ok" and r["lastEvaluation"] > "2000"
                    for g in client.get("/rules").json()["data"]["groups"]
                    for r in g["rules"]
                ),
                30,
                "the alert rules' first evaluation",
            )
            yield client
            assert load.statuses.get(200, 0) > 0, load.statuses
    except BaseException:
        for log in ("service.log", "prometheus.log"):
            if (work / log).exists():
                sys.stderr.write(f"--- {log} ---\n{(work / log).read_text()[-3000:]}\n")
        raise


@pytest.mark.parametrize(
    "expr", dashboard_exprs() + alert_exprs() + scaled_object_exprs(), ids=lambda e: e.source
)
def test_expression_runs_and_returns_data(prometheus_under_load: httpx.Client, expr: Expr) -> None:
    answer = prometheus_under_load.get("/query", params={"query": expr.promql}).json()
    assert answer["status"] == "success", f"{expr.promql}: {answer.get('error')}"
    assert not answer.get("warnings"), answer["warnings"]
    values = [float(series["value"][1]) for series in answer["data"]["result"]]
    assert any(math.isfinite(v) for v in values), f"no data for {expr.promql}: {values}"


def test_alert_rules_evaluate_without_error(prometheus_under_load: httpx.Client) -> None:
    groups = prometheus_under_load.get("/rules").json()["data"]["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert rules.keys() == {expr.source.removeprefix("alert ") for expr in alert_exprs()}
    for name, rule in rules.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))


def test_healthy_service_fires_no_alert(prometheus_under_load: httpx.Client) -> None:
    alerts = prometheus_under_load.get("/alerts").json()["data"]["alerts"]
    assert alerts == []
