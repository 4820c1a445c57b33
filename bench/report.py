"""Tables, ratios and target checks of a serve_compare run, as Markdown.

Every figure for a (system, n, concurrency, format) cell is the median over its rounds;
ratios divide medians, and the per-round spread is in the JSON (`closed`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

Key = tuple[str, int, int, str]  # system, n, concurrency, format


def summarise(runs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    cells: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if "error" not in run:
            cells[(run["system"], run["n"], run["concurrency"], run["format"])].append(run)
    out = {}
    for key, group in cells.items():
        rates = [r["req_per_s"] for r in group]
        median = {
            q: statistics.median(r["latency_ms"][q] for r in group) for q in ("p50", "p95", "p99")
        }
        out[key] = {
            "req_per_s": statistics.median(rates),
            "rounds": rates,
            "non_2xx": sum(r["non_2xx"] for r in group)
            + sum(sum(r["socket_errors"].values()) for r in group),
            **median,
        }
    return out


def median_rps(runs: list[dict[str, Any]], system: str, n: int, c: int, fmt: str) -> float | None:
    cell = summarise(runs).get((system, n, c, fmt))
    return None if cell is None else float(cell["req_per_s"])


def best_peer(cells: dict[Key, dict[str, Any]], c: int) -> str | None:
    """The peer with the highest median req/s at n = 16 png and `c` connections, if any ran."""
    found = [
        (cell["req_per_s"], system)
        for (system, n, conc, fmt), cell in cells.items()
        if not system.startswith("gan-serve") and (n, conc, fmt) == (16, c, "png")
    ]
    return max(found)[1] if found else None


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.2f}"


def _versus(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    """'req/s ratio (p99 ratio)' of two cells."""
    ours, theirs = ours or {}, theirs or {}
    rate = _ratio(ours.get("req_per_s"), theirs.get("req_per_s"))
    return f"{rate} ({_ratio(ours.get('p99'), theirs.get('p99'))})"


def _fmt(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "**FAIL**")


def _at_most(value: float | None, bound: float) -> str:
    return _check(None if value is None else value <= bound)


def markdown(res: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    m = res.get("machine", {})
    card = res.get("service_card", {})
    add(
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, Python {m.get('python')}, "
        f"commit {m.get('commit')}; gan-serve's provider: **{card.get('provider')}**"
        f"{' (fallback)' if card.get('provider_fallback') else ''}."
    )
    quiets = [r["quiet"] for r in res.get("closed", []) if "quiet" in r]
    if quiets:
        busy = [q["busy_cores"] for q in quiets if q["busy_cores"] is not None]
        add(
            f"Quiet check before each of {len(quiets)} closed-loop runs: others used up to "
            f"{max(busy, default=0):.2f} cores; {sum(not q['quiet'] for q in quiets)} runs "
            "started after the wait cap with the machine still busy."
        )
    for name, stamp in res.get("peers", {}).items():
        add(f"- peer {name}: {stamp.get('versions', stamp.get('error'))}")
    add("")

    lim = res.get("limit")
    if lim:
        add(
            f"### The limit ({lim['provider']}, 1 intra-op thread, batch {lim['batch']}: "
            f"{lim['t_image_us']} µs per image; batch 16 run {lim['t_run16_ms']} ms)"
        )
        each = lim.get("t_image_us_each", [])
        if len(each) > 1:
            add("")
            runs16 = ", ".join(f"{t:g}" for t in lim.get("t_run16_ms_each", []))
            add(
                f"Each figure the median of {len(each)} measurements, one before gan-serve's "
                f"cells in each round: {', '.join(f'{t:g}' for t in each)} µs per image"
                + (f"; batch 16 runs of {runs16} ms." if runs16 else ".")
            )
        add("")
        add("| format | encode n=16 ms | in-process request ms | limit req/s |")
        add("|---|---|---|---|")
        for f, t in lim["t_encode_ms"].items():
            add(f"| {f} | {t} | {lim['t_request16_ms'][f]} | {lim['limit_req_per_s'][f]} |")
        add("")

    cells = summarise(res.get("closed", []))
    systems = list(dict.fromkeys(k[0] for k in cells if k[1] == 16 and k[3] == "png"))
    cs = sorted({k[2] for k in cells if k[1] == 16 and k[3] == "png"})
    if cs:
        add("### n = 16, png: req/s (p99 ms), median of rounds")
        add("")
        add("| system | " + " | ".join(f"c = {c}" for c in cs) + " |")
        add("|---|" + "---|" * len(cs))
        for s in systems:
            row = [cells.get((s, 16, c, "png")) for c in cs]
            add(
                f"| {s} | "
                + " | ".join(
                    "–" if x is None else f"{x['req_per_s']:.0f} ({x['p99']:.1f})" for x in row
                )
                + " |"
            )
        add("")
        add("| ratio | " + " | ".join(f"c = {c}" for c in cs) + " |")
        add("|---|" + "---|" * len(cs))

        def service(c: int) -> dict[str, Any] | None:
            return cells.get(("gan-serve", 16, c, "png"))

        if lim:
            add(
                "| gan-serve / limit | "
                + " | ".join(
                    _ratio((service(c) or {}).get("req_per_s"), lim["limit_req_per_s"]["png"])
                    for c in cs
                )
                + " |"
            )
        for s in systems:
            if s.startswith("gan-serve"):
                continue
            add(
                f"| gan-serve / {s} (p99 ratio) | "
                + " | ".join(_versus(service(c), cells.get((s, 16, c, "png"))) for c in cs)
                + " |"
            )
        add("")

    own = sorted(k for k in cells if k[0] == "gan-serve")
    if own:
        add("### gan-serve, every cell (median of rounds)")
        add("")
        add("| n | format | c | req/s | images/s | p50 ms | p95 ms | p99 ms | errors | rounds |")
        add("|---|---|---|---|---|---|---|---|---|---|")
        for k in own:
            x = cells[k]
            add(
                f"| {k[1]} | {k[3]} | {k[2]} | {x['req_per_s']:.0f} | {x['req_per_s'] * k[1]:.0f}"
                f" | {x['p50']:.1f} | {x['p95']:.1f} | {x['p99']:.1f} | {x['non_2xx']} | "
                f"{', '.join(f'{r:.0f}' for r in x['rounds'])} |"
            )
        add("")

    versus = {v["connections"]: v for v in res.get("versus", []) if "error" not in v}
    if versus:
        add(
            "### gan-serve against the best peer, side by side (n = 16, png; runs alternated "
            "in pairs)"
        )
        add("")
        add("| c | peer | gan-serve / peer, pair by pair | median | req/s | p99 ms |")
        add("|---|---|---|---|---|---|")
        for c, v in sorted(versus.items()):
            ours, peer = v["systems"]
            add(
                f"| {c} | {peer} | {', '.join(_fmt(p['ratio'], 2) for p in v['pairs'])} | "
                f"**{_fmt(v['ratio'], 2)}** | {v['req_per_s'][ours]:.0f} / "
                f"{v['req_per_s'][peer]:.0f} | {v['p99_ms'][ours]:.1f} / {v['p99_ms'][peer]:.1f} |"
            )
        add("")

    onoff = res.get("onoff")
    ratio_on_off = None
    if onoff and "error" not in onoff:
        on, off = onoff["systems"]
        ratio_on_off, pairs = onoff["ratio"], len(onoff["pairs"])
        add(
            f"### Batching on / off, n = {onoff['n']}, c = {onoff['connections']}, "
            f"{onoff['format']}: **{_fmt(ratio_on_off, 2)}×** (the median of {pairs} pair"
            f"{'s' if pairs != 1 else ''} of runs, the two servers side by side, alternated)"
        )
        add("")
        add(f"| pair | {on} req/s (p99 ms) | {off} req/s (p99 ms) | on / off |")
        add("|---|---|---|---|")
        for index, pair in enumerate(onoff["pairs"], 1):
            a, b = pair[on], pair[off]
            add(
                f"| {index} | {a['req_per_s']:.0f} ({a['latency_ms']['p99']:.1f}) | "
                f"{b['req_per_s']:.0f} ({b['latency_ms']['p99']:.1f}) | {_fmt(pair['ratio'], 2)} |"
            )
        add(
            f"| median | {onoff['req_per_s'][on]:.0f} ({onoff['p99_ms'][on]:.1f}) | "
            f"{onoff['req_per_s'][off]:.0f} ({onoff['p99_ms'][off]:.1f}) | "
            f"{_fmt(ratio_on_off, 2)} |"
        )
        add("")

    ol = res.get("openloop")
    if ol and "error" not in ol:
        add(
            f"### Open loop, n = 16 png: highest rate held (p99 ≤ {ol['p99_limit_ms']:g} ms, "
            f"no rejection): **{_fmt(ol['highest_rate_held'])} req/s**"
        )
        add("")
        add("| rate | sent | statuses | p50 | p99 | held |")
        add("|---|---|---|---|---|---|")
        for st in ol["steps"]:
            lat = st["ok_latency_ms"] or {}
            add(
                f"| {st['rate']} | {st['sent']} | {st['statuses']} | {_fmt(lat.get('p50'))} | "
                f"{_fmt(lat.get('p99'))} | {st['held']} |"
            )
        add("")
    ov = res.get("overload")
    if ov and "error" not in ov:
        o = ov["overload"]
        add(f"### Overload: {ov['multiple']:g}× capacity, n = {ov['n']}")
        add("")
        add(
            f"Capacity (closed loop, 32 connections): {ov['capacity']['ok_per_s']} ok/s. "
            f"Overload at {o['rate']} req/s: goodput {o['goodput_req_per_s']} ok/s "
            f"(**{_fmt(ov['goodput_ratio'], 2)}×** capacity), statuses {o['statuses']}, "
            f"accepted p99 {_fmt((o['ok_latency_ms'] or {}).get('p99'))} ms, "
            f"rejected p99 {_fmt((o['rejected_latency_ms'] or {}).get('p99'))} ms, "
            f"/healthz p99 {_fmt((ov['healthz']['latency_ms'] or {}).get('p99'))} ms."
        )
        add("")
    for label in ("onoff", "openloop", "overload", "burst", "disconnects"):
        if "error" in res.get(label, {}):
            add(f"### {label}: failed: {res[label]['error']}")
            add("")
    for failed in (v for v in res.get("versus", []) if "error" in v):
        add(f"### versus: failed: {failed['error']}")
        add("")
    b = res.get("burst")
    if b and "error" not in b:
        lat = b["ok_latency_ms"] or {}
        rej = b["rejected_latency_ms"] or {}
        connect = b.get("connect_ms") or {}
        add(f"### Burst: {b['clients']} concurrent requests, n = {b['n']}, {b['format']}")
        add("")
        add(
            f"Statuses {b['statuses']}; answered within the deadline + 1 s: "
            f"{b['answered_within_deadline_plus_1s']}; 200s p50 {_fmt(lat.get('p50'))} / max "
            f"{_fmt(lat.get('max'))} ms; rejections p50 {_fmt(rej.get('p50'))} / max "
            f"{_fmt(rej.get('max'))} ms (each from its request's write; connection set-up "
            f"before the burst p50 {_fmt(connect.get('p50'))} / max "
            f"{_fmt(connect.get('max'))} ms); RSS {b['rss_mb']['before']} → peak "
            f"{b['rss_mb']['peak']} → {b['rss_mb']['after']} MB; the server's event loop "
            f"used {_fmt(b.get('event_loop_cpu_ms'))} ms of CPU."
        )
        add("")
    d = res.get("disconnects")
    if d and "error" not in d:
        add(
            f"### Disconnects: {d['clients']} clients, n = {d['n']}, gone after "
            f"{d['disconnect_after_ms']:g} ms"
        )
        add("")
        nexts = d.get("next_requests", [d["next_request"]])
        add(
            f"{len(nexts)} trial(s). Images generated for them: {d['images_generated']:.0f} "
            f"({100 * d['share_generated']:.1f} %); the next n = 16 request: "
            + ", ".join(f"{r['status']} in {r['latency_ms']} ms" for r in nexts)
            + "."
        )
        add("")

    add("### Targets (issue 8)")
    add("")
    add("| target | measured | |")
    add("|---|---|---|")
    for c in cs:
        peer = best_peer(cells, c)
        ours, best = cells.get(("gan-serve", 16, c, "png")), cells.get((peer or "", 16, c, "png"))
        if not (ours and best):
            continue
        need = {32: 1.5, 1: 1.2}.get(c, 1.0)
        if (v := versus.get(c)) is not None:  # side by side: the drift left out
            ratio, how = v["ratio"], f"side by side with {v['systems'][1]}"
            our_p99, their_p99 = (v["p99_ms"][name] for name in v["systems"])
        else:
            ratio, how = ours["req_per_s"] / best["req_per_s"], "closed rounds"
            our_p99, their_p99 = ours["p99"], best["p99"]
        p99_ok = c != 32 or our_p99 <= their_p99
        add(
            f"| c = {c}: ≥ {need}× best peer{' with p99 no worse' if c == 32 else ''} | "
            f"{ratio:.2f}× ({how}), p99 {our_p99:.1f} vs {their_p99:.1f} ms | "
            f"{_check(ratio >= need and p99_ok)} |"
        )
    s32 = cells.get(("gan-serve", 16, 32, "png"))
    if lim and s32:
        r = s32["req_per_s"] / lim["limit_req_per_s"]["png"]
        add(f"| c = 32: ≥ 0.6× limit | {r:.2f}× | {_check(r >= 0.6)} |")
    s1 = cells.get(("gan-serve", 16, 1, "png"))
    if lim and s1:
        floor = lim["t_request16_ms"]["png"] + 1
        add(
            f"| c = 1: p50 ≤ in-process + 1 ms | {s1['p50']:.2f} vs {floor:.2f} ms | "
            f"{_check(s1['p50'] <= floor)} |"
        )
    if ratio_on_off is not None:
        add(f"| batching on ≥ 2× off | {ratio_on_off:.2f}× | {_check(ratio_on_off >= 2)} |")
    deadline = float(card.get("limits", {}).get("request_timeout_s", 30))
    if ov and "error" not in ov:
        o = ov["overload"]
        acc = (o["ok_latency_ms"] or {}).get("p99")
        rej = (o["rejected_latency_ms"] or {}).get("p99")
        hz = (ov["healthz"]["latency_ms"] or {}).get("p99")
        add(
            f"| overload goodput ≥ 0.8× capacity | {_fmt(ov['goodput_ratio'], 2)}× | "
            f"{_check(None if ov['goodput_ratio'] is None else ov['goodput_ratio'] >= 0.8)} |"
        )
        add(
            f"| overload accepted p99 ≤ deadline | {_fmt(acc)} ms | "
            f"{_check(None if acc is None else acc <= deadline * 1000)} |"
        )
        add(f"| overload 503 p99 ≤ 50 ms | {_fmt(rej)} ms | {_at_most(rej, 50)} |")
        add(f"| /healthz p99 ≤ 50 ms | {_fmt(hz)} ms | {_at_most(hz, 50)} |")
    b = res.get("burst")
    if b and "error" not in b:
        rej = (b["rejected_latency_ms"] or {}).get("max")
        rss = b["rss_mb"]
        grew = None if None in (rss["before"], rss["after"]) else rss["after"] - rss["before"]
        add(
            f"| burst: all answered within deadline + 1 s | {b['answered_within_deadline_plus_1s']}"
            f" / {b['clients']} | {_check(b['answered_within_deadline_plus_1s'] == b['clients'])} |"
        )
        add(
            f"| burst: every rejection ≤ 100 ms | max {_fmt(rej)} ms | "
            f"{_check(None if rej is None else rej <= 100)} |"
        )
        add(
            f"| burst: RSS back within 50 MB | {rss['before']} → {rss['after']} MB "
            f"(peak {rss['peak']}) | {_check(None if grew is None else grew <= 50)} |"
        )
    d = res.get("disconnects")
    if d and "error" not in d:
        nxt = d["next_request"]
        add(
            f"| disconnects: ≤ 5 % of images generated | {100 * d['share_generated']:.1f} % | "
            f"{_check(d['share_generated'] <= 0.05)} |"
        )
        add(
            f"| disconnects: next n = 16 ≤ 100 ms | worst {nxt['latency_ms']} ms "
            f"({nxt['status']}) | "
            f"{_check(nxt['status'] == 200 and nxt['latency_ms'] <= 100)} |"
        )
    return "\n".join(lines) + "\n"
