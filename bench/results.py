"""A serve-compare result as the report reads it: the closed-loop cells (each the median of
its rounds), the best peer at each concurrency, and `Run`, the view every section of the
report and every target reads.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Run:
    """A serve-compare result and its closed-loop cells, as every section reads them."""

    res: dict[str, Any]
    cells: dict[Key, dict[str, Any]]

    @classmethod
    def of(cls, res: dict[str, Any]) -> Run:
        return cls(res, summarise(res.get("closed", [])))

    def part(self, name: str) -> dict[str, Any] | None:
        """One part's result; None where it did not run or failed."""
        found = self.res.get(name)
        return found if found and "error" not in found else None

    def cell(self, system: str, c: int) -> dict[str, Any] | None:
        """The n = 16 png cell of `system` at `c` connections."""
        return self.cells.get((system, 16, c, "png"))

    @property
    def systems(self) -> list[str]:
        """Systems with n = 16 png cells, in the order they first ran."""
        return list(dict.fromkeys(k[0] for k in self.cells if k[1] == 16 and k[3] == "png"))

    @property
    def concurrencies(self) -> list[int]:
        return sorted({k[2] for k in self.cells if k[1] == 16 and k[3] == "png"})

    @property
    def versus(self) -> dict[int, dict[str, Any]]:
        """The side-by-side runs against the best peer, by concurrency."""
        return {v["connections"]: v for v in self.res.get("versus", []) if "error" not in v}

    @property
    def deadline_ms(self) -> float:
        card = self.res.get("service_card", {})
        return 1000 * float(card.get("limits", {}).get("request_timeout_s", 30))


def fmt(value: Any, digits: int = 1) -> str:
    """A figure as the report prints it; an en dash where it was not measured."""
    return "–" if value is None else f"{value:.{digits}f}"


def p99(latency: dict[str, float] | None) -> float | None:
    return (latency or {}).get("p99")
