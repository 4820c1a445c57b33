"""bench/probes.py's alternated runs: batching on against off, two real gan-serve servers side
by side on a tiny model, measured pair by pair with the real wrk."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bench import probes, server_view, systems
from bench.quiet import Quiet
from tests.support import onnx_models as models

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

ON, OFF = "gan-serve", "gan-serve-nobatch"


def _no_wait() -> Quiet:
    return Quiet(busy_cores=None, loadavg_1m=None, waited_s=0.0, quiet=True)


@pytest.fixture
def on_and_off(tmp_path: Path) -> Iterator[tuple[systems.Server, systems.Server]]:
    model = models.mlp_generator(tmp_path / "mlp.onnx")
    with ExitStack() as running:
        servers = []
        for name in (ON, OFF):
            scratch = tmp_path / name
            scratch.mkdir()
            server = systems.start(systems.SYSTEMS[name], model, "cpu", tmp_path / "logs", scratch)
            running.callback(server.stop)
            servers.append(server)
        yield servers[0], servers[1]


def test_alternated_pairs_measure_both_servers_and_the_median_of_their_ratios(
    on_and_off: tuple[systems.Server, systems.Server],
) -> None:
    on, off = on_and_off
    before = {s.system.name: server_view.histogram_totals(s.base_url) for s in on_and_off}
    result = probes.alternated(
        on_and_off,
        _no_wait,
        n=1,
        fmt="png",
        connections=16,
        pairs=3,
        duration_s=1.0,
        warmup_s=1.0,
        run_warmup_s=1.0,
    )
    assert result["systems"] == [ON, OFF]
    assert len(result["pairs"]) == 3
    for pair in result["pairs"]:
        assert pair[ON]["statuses"] == {"200": pair[ON]["requests"]} and pair[ON]["requests"] > 0
        assert pair[OFF]["statuses"] == {"200": pair[OFF]["requests"]}
        assert pair["ratio"] == round(pair[ON]["req_per_s"] / pair[OFF]["req_per_s"], 3)
    assert result["ratio"] == round(statistics.median(p["ratio"] for p in result["pairs"]), 3)
    assert result["req_per_s"][ON] == round(
        statistics.median(p[ON]["req_per_s"] for p in result["pairs"]), 1
    )
    assert result["non_2xx"] == {ON: 0, OFF: 0}
    # Each server did its own kind of runs: off one image at a time, on several at once.
    means = {
        s.system.name: server_view.stage_means(
            before[s.system.name], server_view.histogram_totals(s.base_url)
        )
        for s in (on, off)
    }
    assert means[OFF]["batch_rows"] == 1.0
    assert means[ON]["batch_rows"] > 1.0
