"""The soak's record: a sample of the server every interval, and the verdicts over the run.

A sample: RSS, open file descriptors and threads of the server's whole process tree (/proc),
the queue depth (`gan_queue_depth` from /metrics, every model), the requests answered,
refused, failed and lost so far, and the p99 of the normal requests answered in the
interval. The verdicts judge the pass criteria of docs/benchmarks.md's soak row.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench import systems
from bench.soak_traffic import Ledger, Record

OUTCOMES = ("ok", "refused", "failed", "lost", "hung_up")


def tree(pid: int) -> dict[str, float]:
    """RSS (MB), open fds and threads of `pid` and every process below it."""
    rss_kb = fds = threads = 0
    for member in [pid, *systems.descendants(pid)]:
        try:
            status = Path(f"/proc/{member}/status").read_text().splitlines()
            fds += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:  # gone meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        rss_kb += int(fields.get("VmRSS", "0 kB").split()[0])
        threads += int(fields.get("Threads", "0"))
    return {"rss_mb": round(rss_kb / 1024, 1), "fds": fds, "threads": threads}


def queue_depth(base_url: str) -> float | None:
    """Images queued over every model, from /metrics; None when it does not answer."""
    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gan_queue_depth"
    )


def counts(records: list[Record]) -> dict[str, int]:
    found = dict.fromkeys(OUTCOMES, 0)
    for record in records:
        found[record.outcome] += 1
    return found


def p99_ms(records: list[Record]) -> float | None:
    latencies = [r.done - r.sent for r in records if r.kind == "normal" and r.outcome == "ok"]
    return round(float(np.percentile(latencies, 99)) * 1000, 1) if latencies else None


def sample(pid: int, base_url: str, ledger: Ledger, since: int, t: float) -> dict[str, Any]:
    """One row of the record; `since`: the first ledger entry of this interval."""
    return {
        "t_s": round(t, 1),
        **tree(pid),
        "queue_depth": queue_depth(base_url),
        **counts(ledger.records),
        "p99_ms": p99_ms(ledger.records[since:]),
    }


# -- verdicts ------------------------------------------------------------------------------


def excess_over_rate(records: list[Record], rate: float) -> float:
    """The most images served to one key in any window beyond rate × the window's length.

    The server charges a request somewhere between its first byte sent and its answer's
    last byte received: the images of the requests wholly inside [a, b] were granted within
    it, so they must be at most rate × (b - a) + burst. Every window starting at a send and
    ending at an answer is checked (the client's bounds are wider than the server's: the
    check errs towards passing by rate × one latency at most)."""
    granted = [r for r in records if r.outcome == "ok" and r.images]
    if not granted:
        return 0.0
    sent = np.array([r.sent for r in granted])
    done = np.array([r.done for r in granted])
    images = np.array([r.images for r in granted], dtype=float)
    by_done = np.argsort(done)
    sent, done, images = sent[by_done], done[by_done], images[by_done]
    worst = 0.0
    for start in np.unique(sent):
        inside = sent >= start  # and ending by each answer, in the order they ended
        total = np.cumsum(np.where(inside, images, 0.0))
        ends = done >= start
        worst = max(worst, float(np.max((total - rate * (done - start))[ends])))
    return worst


def drift(samples: list[dict[str, Any]], name: str, warm_s: float, span_s: float) -> float | None:
    """The median of `name` over the last `span_s` seconds less its median over the
    `span_s` seconds after `warm_s` (medians: a burst that happens to be sampled is not
    drift)."""
    end = samples[-1]["t_s"]
    first = [s[name] for s in samples if warm_s <= s["t_s"] < warm_s + span_s]
    last = [s[name] for s in samples if s["t_s"] > end - span_s]
    if not first or not last or end - span_s < warm_s + span_s:
        return None
    return float(np.median(last) - np.median(first))


def verdicts(result: dict[str, Any], judge_drift: bool) -> list[dict[str, Any]]:
    """One row per criterion: its name, the figure, and pass / FAIL / n/a."""
    rows = []

    def row(name: str, figure: str, passed: bool | None) -> None:
        verdict = "n/a" if passed is None else "pass" if passed else "FAIL"
        rows.append({"criterion": name, "measured": figure, "verdict": verdict})

    totals = result["totals"]
    unexplained = result["unexplained_5xx"]
    row("0 × 5xx other than 503/504 with their reason", f"{unexplained}", unexplained == 0)
    row("0 responses lost", f"{totals['lost']} lost", totals["lost"] == 0)
    bad = result["bad_input_served"]
    row("bad input never served (4xx, not 2xx or 5xx)", f"{bad} served", bad == 0)
    for name, unit, limit in (("rss_mb", "MB", 20), ("fds", "fds", 10)):
        value = result["drift"][name]
        figure = "too short to judge" if value is None else f"{value:+.1f} {unit}"
        flat = None if value is None or not judge_drift else abs(value) < limit
        row(f"{name} flat (drift < {limit} {unit}, minute 5 to the end)", figure, flat)
    burst, keys = result["rate_limit"]["burst"], result["rate_limit_keys"]
    excess = result["rate_limit"]["excess_images"]
    for what, names in (
        (f"the key at its rate ({keys['at']})", [keys["at"]]),
        (f"the key at 3× its rate ({keys['over']})", [keys["over"]]),
        (f"the worst of the {len(keys['traffic'])} traffic keys", keys["traffic"]),
    ):
        worst = max((excess[name] for name in names if name in excess), default=0.0)
        figure = f"{worst:.0f} images over rate·t (burst {burst})"
        row(f"rate limit held: {what}", figure, worst <= burst)
    term = result["sigterm"]
    row(
        "SIGTERM: drained, exit status 0, nothing in flight lost",
        f"exit {term['exit']}, {term['lost']} lost, {term['seconds']} s",
        term["exit"] == 0 and term["lost"] == 0,
    )
    hup = result["sighup"]
    row(
        "SIGHUP: drained like SIGTERM, exit status 0, nothing lost, no process left",
        hup["what_happened"],
        hup["exit"] == 0 and hup["lost"] == 0 and hup["tree_left_running"] == 0,
    )
    return rows


def plot(samples: list[dict[str, Any]], title: str, path: Path) -> None:
    """The samples as a PNG: one panel per series, time in minutes."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    minutes = [s["t_s"] / 60 for s in samples]
    panels = [
        ("RSS, MB", ["rss_mb"]),
        ("open fds", ["fds"]),
        ("threads", ["threads"]),
        ("queue depth, images", ["queue_depth"]),
        ("requests so far", ["ok", "refused", "failed", "lost"]),
        ("p99 of normal requests, ms", ["p99_ms"]),
    ]
    figure, axes = plt.subplots(2, 3, figsize=(14, 7), sharex=True)
    for ax, (label, names) in zip(axes.flat, panels, strict=True):
        for name in names:
            values = [np.nan if s[name] is None else s[name] for s in samples]
            ax.plot(minutes, values, marker=".", label=name)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if len(names) > 1:
            ax.legend()
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
