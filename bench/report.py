"""The Markdown report of a serve-compare result: its tables, ratios and targets.

    python -m bench report docs/bench-results/serve-compare-2026-11-28-side-by-side.json

One small function per section (`SECTIONS`, in the report's order), each rendering one part
of the run where it ran; the last checks the targets (bench/targets.py). Every figure for a
(system, n, concurrency, format) cell is the median over its rounds; ratios divide medians,
and the per-round spread is in the JSON (`closed`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import targets
from bench.results import Run, fmt, p99

Lines = list[str]
Part = dict[str, Any]  # one part's result, as serve-compare wrote it
PROBES = ("onoff", "openloop", "overload", "burst", "disconnects")  # each may fail alone


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.2f}"


def _versus(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    """'req/s ratio (p99 ratio)' of two cells."""
    ours, theirs = ours or {}, theirs or {}
    rate = _ratio(ours.get("req_per_s"), theirs.get("req_per_s"))
    return f"{rate} ({_ratio(ours.get('p99'), theirs.get('p99'))})"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _table(*header: str) -> Lines:
    return [_row(*header), "|" + "---|" * len(header)]


# -- the sections, in the report's order ------------------------------------------------------


def _header(run: Run) -> Lines:
    m, card = run.res.get("machine", {}), run.res.get("service_card", {})
    lines = [
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, Python {m.get('python')}, "
        f"commit {m.get('commit')}; gan-serve's provider: **{card.get('provider')}**"
        f"{' (fallback)' if card.get('provider_fallback') else ''}."
    ]
    quiets = [r["quiet"] for r in run.res.get("closed", []) if "quiet" in r]
    if quiets:
        busy = [q["busy_cores"] for q in quiets if q["busy_cores"] is not None]
        lines.append(
            f"Quiet check before each of {len(quiets)} closed-loop runs: others used up to "
            f"{max(busy, default=0):.2f} cores; {sum(not q['quiet'] for q in quiets)} runs "
            "started after the wait cap with the machine still busy."
        )
    for name, stamp in run.res.get("peers", {}).items():
        lines.append(f"- peer {name}: {stamp.get('versions', stamp.get('error'))}")
    return [*lines, ""]


def _limit(lim: Part) -> Lines:
    lines = [
        f"### The limit ({lim['provider']}, 1 intra-op thread, batch {lim['batch']}: "
        f"{lim['t_image_us']} µs per image; batch 16 run {lim['t_run16_ms']} ms)"
    ]
    each = lim.get("t_image_us_each", [])
    if len(each) > 1:
        runs16 = ", ".join(f"{t:g}" for t in lim.get("t_run16_ms_each", []))
        lines += [
            "",
            f"Each figure the median of {len(each)} measurements, one before gan-serve's "
            f"cells in each round: {', '.join(f'{t:g}' for t in each)} µs per image"
            + (f"; batch 16 runs of {runs16} ms." if runs16 else "."),
        ]
    lines += ["", *_table("format", "encode n=16 ms", "in-process request ms", "limit req/s")]
    for f, t in lim["t_encode_ms"].items():
        lines.append(_row(f, t, lim["t_request16_ms"][f], lim["limit_req_per_s"][f]))
    return lines


def _closed(run: Run) -> Lines:
    """Every system at n = 16 png, then gan-serve's ratios to the limit and to each peer."""
    cs = run.concurrencies
    if not cs:
        return []
    columns = [f"c = {c}" for c in cs]
    lines = ["### n = 16, png: req/s (p99 ms), median of rounds", "", *_table("system", *columns)]
    for s in run.systems:
        row = [run.cell(s, c) for c in cs]
        lines.append(
            _row(s, *("–" if x is None else f"{x['req_per_s']:.0f} ({x['p99']:.1f})" for x in row))
        )
    lines += ["", *_table("ratio", *columns)]
    ours = [run.cell("gan-serve", c) for c in cs]
    if lim := run.part("limit"):
        limit = lim["limit_req_per_s"]["png"]
        lines.append(
            _row("gan-serve / limit", *(_ratio((x or {}).get("req_per_s"), limit) for x in ours))
        )
    for s in run.systems:
        if not s.startswith("gan-serve"):
            theirs = [run.cell(s, c) for c in cs]
            lines.append(_row(f"gan-serve / {s} (p99 ratio)", *map(_versus, ours, theirs)))
    return [*lines, ""]


def _every_cell(run: Run) -> Lines:
    own = sorted(k for k in run.cells if k[0] == "gan-serve")
    if not own:
        return []
    lines = [
        "### gan-serve, every cell (median of rounds)",
        "",
        *_table(
            "n",
            "format",
            "c",
            "req/s",
            "images/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors",
            "rounds",
        ),
    ]
    for k in own:
        x = run.cells[k]
        lines.append(
            f"| {k[1]} | {k[3]} | {k[2]} | {x['req_per_s']:.0f} | {x['req_per_s'] * k[1]:.0f}"
            f" | {x['p50']:.1f} | {x['p95']:.1f} | {x['p99']:.1f} | {x['non_2xx']} | "
            f"{', '.join(f'{r:.0f}' for r in x['rounds'])} |"
        )
    return [*lines, ""]


def _side_by_side(run: Run) -> Lines:
    versus = run.versus
    if not versus:
        return []
    lines = [
        "### gan-serve against the best peer, side by side (n = 16, png; runs alternated in pairs)",
        "",
        *_table("c", "peer", "gan-serve / peer, pair by pair", "median", "req/s", "p99 ms"),
    ]
    for c, v in sorted(versus.items()):
        ours, peer = v["systems"]
        lines.append(
            _row(
                c,
                peer,
                ", ".join(fmt(p["ratio"], 2) for p in v["pairs"]),
                f"**{fmt(v['ratio'], 2)}**",
                f"{v['req_per_s'][ours]:.0f} / {v['req_per_s'][peer]:.0f}",
                f"{v['p99_ms'][ours]:.1f} / {v['p99_ms'][peer]:.1f}",
            )
        )
    return [*lines, ""]


def _onoff(onoff: Part) -> Lines:
    on, off = onoff["systems"]
    ratio, pairs = fmt(onoff["ratio"], 2), len(onoff["pairs"])
    lines = [
        f"### Batching on / off, n = {onoff['n']}, c = {onoff['connections']}, "
        f"{onoff['format']}: **{ratio}×** (the median of {pairs} pair"
        f"{'s' if pairs != 1 else ''} of runs, the two servers side by side, alternated)",
        "",
        *_table("pair", f"{on} req/s (p99 ms)", f"{off} req/s (p99 ms)", "on / off"),
    ]
    for index, pair in enumerate(onoff["pairs"], 1):
        a, b = pair[on], pair[off]
        lines.append(
            _row(
                index,
                f"{a['req_per_s']:.0f} ({a['latency_ms']['p99']:.1f})",
                f"{b['req_per_s']:.0f} ({b['latency_ms']['p99']:.1f})",
                fmt(pair["ratio"], 2),
            )
        )
    rates, p99 = onoff["req_per_s"], onoff["p99_ms"]
    lines.append(
        _row(
            "median",
            f"{rates[on]:.0f} ({p99[on]:.1f})",
            f"{rates[off]:.0f} ({p99[off]:.1f})",
            ratio,
        )
    )
    return lines


def _openloop(ol: Part) -> Lines:
    lines = [
        f"### Open loop, n = 16 png: highest rate held (p99 ≤ {ol['p99_limit_ms']:g} ms, "
        f"no rejection): **{fmt(ol['highest_rate_held'])} req/s**",
        "",
        *_table("rate", "sent", "statuses", "p50", "p99", "held"),
    ]
    for st in ol["steps"]:
        lat = st["ok_latency_ms"] or {}
        lines.append(
            _row(
                st["rate"],
                st["sent"],
                st["statuses"],
                fmt(lat.get("p50")),
                fmt(lat.get("p99")),
                st["held"],
            )
        )
    return lines


def _overload(ov: Part) -> Lines:
    o = ov["overload"]
    return [
        f"### Overload: {ov['multiple']:g}× capacity, n = {ov['n']}",
        "",
        f"Capacity (closed loop, 32 connections): {ov['capacity']['ok_per_s']} ok/s. "
        f"Overload at {o['rate']} req/s: goodput {o['goodput_req_per_s']} ok/s "
        f"(**{fmt(ov['goodput_ratio'], 2)}×** capacity), statuses {o['statuses']}, "
        f"accepted p99 {fmt(p99(o['ok_latency_ms']))} ms, "
        f"rejected p99 {fmt(p99(o['rejected_latency_ms']))} ms, "
        f"/healthz p99 {fmt(p99(ov['healthz']['latency_ms']))} ms.",
    ]


def _failures(run: Run) -> Lines:
    errors = [
        (label, run.res[label]["error"]) for label in PROBES if "error" in run.res.get(label, {})
    ]
    errors += [("versus", v["error"]) for v in run.res.get("versus", []) if "error" in v]
    return [line for label, error in errors for line in (f"### {label}: failed: {error}", "")]


def _burst(b: Part) -> Lines:
    lat, rej = b["ok_latency_ms"] or {}, b["rejected_latency_ms"] or {}
    connect, rss = b.get("connect_ms") or {}, b["rss_mb"]
    return [
        f"### Burst: {b['clients']} concurrent requests, n = {b['n']}, {b['format']}",
        "",
        f"Statuses {b['statuses']}; answered within the deadline + 1 s: "
        f"{b['answered_within_deadline_plus_1s']}; 200s p50 {fmt(lat.get('p50'))} / max "
        f"{fmt(lat.get('max'))} ms; rejections p50 {fmt(rej.get('p50'))} / max "
        f"{fmt(rej.get('max'))} ms (each from its request's write; connection set-up "
        f"before the burst p50 {fmt(connect.get('p50'))} / max "
        f"{fmt(connect.get('max'))} ms); RSS {rss['before']} → peak "
        f"{rss['peak']} → {rss['after']} MB; the server's event loop "
        f"used {fmt(b.get('event_loop_cpu_ms'))} ms of CPU.",
    ]


def _disconnects(d: Part) -> Lines:
    nexts = d.get("next_requests", [d["next_request"]])
    return [
        f"### Disconnects: {d['clients']} clients, n = {d['n']}, gone after "
        f"{d['disconnect_after_ms']:g} ms",
        "",
        f"{len(nexts)} trial(s). Images generated for them: {d['images_generated']:.0f} "
        f"({100 * d['share_generated']:.1f} %); the next n = 16 request: "
        + ", ".join(f"{r['status']} in {r['latency_ms']} ms" for r in nexts)
        + ".",
    ]


def _part(name: str, section: Callable[[Part], Lines]) -> Callable[[Run], Lines]:
    """The section of one part, ending in a blank line; none where it did not run or failed."""

    def render(run: Run) -> Lines:
        found = run.part(name)
        return [] if found is None else [*section(found), ""]

    return render


SECTIONS: tuple[Callable[[Run], Lines], ...] = (
    _header,
    _part("limit", _limit),
    _closed,
    _every_cell,
    _side_by_side,
    _part("onoff", _onoff),
    _part("openloop", _openloop),
    _part("overload", _overload),
    _failures,
    _part("burst", _burst),
    _part("disconnects", _disconnects),
    targets.section,
)


def markdown(res: dict[str, Any]) -> str:
    """The report of one serve-compare result (its JSON, as written)."""
    run = Run.of(res)
    return "\n".join(line for section in SECTIONS for line in section(run)) + "\n"


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("result", type=Path, help="a serve-compare JSON result")
    args = parser.parse_args(argv)
    print(markdown(json.loads(args.result.read_text())), end="")
    return 0
