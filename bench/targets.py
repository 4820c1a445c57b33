"""The serving targets, one table (`TARGETS`), and the report's section that checks them.

Each row: what it promises, its threshold (a number, or read from the run), how its figure
is read from the run (no row where the part it needs did not run), and the rule that judges
the figure against the threshold.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.results import Run, best_peer, fmt, p99


@dataclass(frozen=True)
class Reading:
    """A target's figure: `value` is what the rule judges (None: too little to judge), `shown`
    what the row prints, `holds` a second condition the figure carries (a p99, a status)."""

    value: float | None
    shown: str
    holds: bool = True


Reader = Callable[[Run], Reading | None]  # None: the part did not run, so no row


@dataclass(frozen=True)
class Target:
    """One row of the targets table: passes when `rule(value, threshold)` and the reading holds."""

    name: str
    threshold: float | Callable[[Run], float]
    read: Reader
    rule: Callable[[float, float], bool]

    def verdict(self, run: Run, reading: Reading) -> str:
        if reading.value is None:
            return "n/a"
        limit = self.threshold(run) if callable(self.threshold) else self.threshold
        return "pass" if self.rule(reading.value, limit) and reading.holds else "**FAIL**"


def _best_peer(c: int, p99_no_worse: bool = False) -> Reader:
    """gan-serve's req/s over the best peer's at c: side by side where measured so (the
    drift left out), else from the closed rounds."""

    def read(run: Run) -> Reading | None:
        ours, best = run.cell("gan-serve", c), run.cell(best_peer(run.cells, c) or "", c)
        if not (ours and best):
            return None
        if (v := run.versus.get(c)) is not None:
            ratio, how = v["ratio"], f"side by side with {v['systems'][1]}"
            our_p99, their_p99 = (v["p99_ms"][name] for name in v["systems"])
        else:
            ratio, how = ours["req_per_s"] / best["req_per_s"], "closed rounds"
            our_p99, their_p99 = ours["p99"], best["p99"]
        shown = f"{ratio:.2f}× ({how}), p99 {our_p99:.1f} vs {their_p99:.1f} ms"
        return Reading(ratio, shown, holds=not p99_no_worse or our_p99 <= their_p99)

    return read


def _with_limit(c: int, read: Callable[[dict[str, Any], dict[str, Any]], Reading]) -> Reader:
    """`read(limit, gan-serve's n = 16 png cell at c)`, where both were measured."""

    def reader(run: Run) -> Reading | None:
        limit, ours = run.part("limit"), run.cell("gan-serve", c)
        return read(limit, ours) if limit and ours else None

    return reader


def _of(part: str, read: Callable[[dict[str, Any]], Reading | None]) -> Reader:
    """`read(that part's result)`, where the part ran and did not fail."""

    def reader(run: Run) -> Reading | None:
        found = run.part(part)
        return None if found is None else read(found)

    return reader


def _times(value: float | None) -> Reading:
    return Reading(value, f"{fmt(value, 2)}×")


def _ms(value: float | None, prefix: str = "") -> Reading:
    return Reading(value, f"{prefix}{fmt(value)} ms")


def _in_process_plus_1ms(run: Run) -> float:
    """One n = 16 png request in-process (the limit's measurement) + 1 ms."""
    limit = run.part("limit")
    assert limit is not None  # judged only where the limit was measured
    return float(limit["t_request16_ms"]["png"]) + 1


def _rss_growth(b: dict[str, Any]) -> Reading:
    before, peak, after = (b["rss_mb"][k] for k in ("before", "peak", "after"))
    grew = None if None in (before, after) else after - before
    return Reading(grew, f"{before} → {after} MB (peak {peak})")


def _next_request(d: dict[str, Any]) -> Reading:
    """The slowest of the requests after the hang-ups; a refusal fails whatever its time."""
    worst = d["next_request"]
    shown = f"worst {worst['latency_ms']} ms ({worst['status']})"
    return Reading(worst["latency_ms"], shown, holds=worst["status"] == 200)


AT_LEAST, AT_MOST = operator.ge, operator.le

# What the service promises, one row each: the row's text, the threshold (a number, or read
# from the run), how the figure is read (no row where its part did not run), the rule.
TARGETS: tuple[Target, ...] = (
    Target("c = 1: ≥ 1.2× best peer", 1.2, _best_peer(1), AT_LEAST),
    Target("c = 8: ≥ 1.0× best peer", 1.0, _best_peer(8), AT_LEAST),
    Target(
        "c = 32: ≥ 1.5× best peer with p99 no worse",
        1.5,
        _best_peer(32, p99_no_worse=True),
        AT_LEAST,
    ),
    Target("c = 128: ≥ 1.0× best peer", 1.0, _best_peer(128), AT_LEAST),
    Target(
        "c = 32: ≥ 0.6× limit",
        0.6,
        _with_limit(
            32, lambda lim, ours: _times(ours["req_per_s"] / lim["limit_req_per_s"]["png"])
        ),
        AT_LEAST,
    ),
    Target(
        "c = 1: p50 ≤ in-process + 1 ms",
        _in_process_plus_1ms,
        _with_limit(
            1,
            lambda lim, ours: Reading(
                ours["p50"], f"{ours['p50']:.2f} vs {lim['t_request16_ms']['png'] + 1:.2f} ms"
            ),
        ),
        AT_MOST,
    ),
    Target(
        "batching on ≥ 2× off",
        2.0,
        _of("onoff", lambda onoff: None if onoff["ratio"] is None else _times(onoff["ratio"])),
        AT_LEAST,
    ),
    Target(
        "overload goodput ≥ 0.8× capacity",
        0.8,
        _of("overload", lambda ov: _times(ov["goodput_ratio"])),
        AT_LEAST,
    ),
    Target(
        "overload accepted p99 ≤ deadline",
        lambda run: run.deadline_ms,
        _of("overload", lambda ov: _ms(p99(ov["overload"]["ok_latency_ms"]))),
        AT_MOST,
    ),
    Target(
        "overload 503 p99 ≤ 50 ms",
        50,
        _of("overload", lambda ov: _ms(p99(ov["overload"]["rejected_latency_ms"]))),
        AT_MOST,
    ),
    Target(
        "/healthz p99 ≤ 50 ms",
        50,
        _of("overload", lambda ov: _ms(p99(ov["healthz"]["latency_ms"]))),
        AT_MOST,
    ),
    Target(
        "burst: all answered within deadline + 1 s",
        0,
        _of(
            "burst",
            lambda b: Reading(
                b["clients"] - b["answered_within_deadline_plus_1s"],  # unanswered
                f"{b['answered_within_deadline_plus_1s']} / {b['clients']}",
            ),
        ),
        AT_MOST,
    ),
    Target(
        "burst: every rejection ≤ 100 ms",
        100,
        _of("burst", lambda b: _ms((b["rejected_latency_ms"] or {}).get("max"), "max ")),
        AT_MOST,
    ),
    Target("burst: RSS back within 50 MB", 50, _of("burst", _rss_growth), AT_MOST),
    Target(
        "disconnects: ≤ 5 % of images generated",
        0.05,
        _of(
            "disconnects",
            lambda d: Reading(d["share_generated"], f"{100 * d['share_generated']:.1f} %"),
        ),
        AT_MOST,
    ),
    Target("disconnects: next n = 16 ≤ 100 ms", 100, _of("disconnects", _next_request), AT_MOST),
)


def section(run: Run) -> list[str]:
    """The report's last section: a row per target whose part ran, each marked."""
    lines = ["### Targets", "", "| target | measured | |", "|---|---|---|"]
    for target in TARGETS:
        if (reading := target.read(run)) is not None:
            lines.append(f"| {target.name} | {reading.shown} | {target.verdict(run, reading)} |")
    return lines
