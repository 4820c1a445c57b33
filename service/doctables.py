"""The settings and metrics tables of docs/service.md and README.md, kept in step with the code.

    python -m service.doctables --write    # after adding or changing a setting or a metric
    python -m service.doctables            # exit 1 if a table is stale (tests/test_doctables.py)

The rows come from the code: one per `Settings` field, in class order (`GAN_<NAME>`, its
default), and one per metric `Metrics` registers, in the order it creates them (exposed name,
type, labels). The "meaning" column is prose written in docs/service.md: it is kept by name,
and a new row starts from the field's description or the metric's help text. A default that
is not a value (None, a path) keeps the words docs/service.md gives it ("unset", "the
repository's `models/`"). README.md's two tables are copies of docs/service.md's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase
from pydantic.fields import FieldInfo

from core.console import OneLineParser
from service.metrics import Metrics, OneWorkerCpu
from service.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "service.md"
README = REPO / "README.md"
SETTINGS_HEADER = "| variable | default | meaning |"
METRICS_HEADER = "| metric | type | labels | meaning |"

Row = list[str]


def _cells(line: str) -> Row:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _line(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def _table_span(lines: list[str], header: str, where: Path) -> tuple[int, int]:
    """[start, end) of the table whose first line is `header`."""
    try:
        start = lines.index(header)
    except ValueError:
        raise SystemExit(f"{where}: no table with the header {header!r}") from None
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, end


def _existing(lines: list[str], header: str, where: Path) -> dict[str, Row]:
    """Rows of a table by their first cell (header and separator left out)."""
    start, end = _table_span(lines, header, where)
    return {_cells(line)[0]: _cells(line) for line in lines[start + 2 : end]}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(_value(v) for v in value)
    return str(value)


def _sentence(text: str) -> str:
    """A description as a table cell: no full stop, lower case unless an acronym starts it."""
    text = text.strip().rstrip(".")
    first = text.split(" ", 1)[0]
    return text if not text or (len(first) > 1 and first.isupper()) else text[0].lower() + text[1:]


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        factory: Callable[[], Any] = field.default_factory  # type: ignore[assignment]
        return factory()
    return field.default


def settings_rows(old: dict[str, Row]) -> list[Row]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = []
    for name, field in Settings.model_fields.items():
        variable = f"`{prefix}{name.upper()}`"
        before = old.get(variable)
        default = _default(field)
        if default is None or isinstance(default, Path):
            cell = before[1] if before else "unset" if default is None else f"`{default}`"
        else:
            cell = f"`{_value(default)}`" if _value(default) else "none"
        meaning = before[2] if before else _sentence(field.description or "")
        rows.append([variable, cell, meaning])
    return rows


def _metric_objects() -> list[MetricWrapperBase]:
    """The metrics one app instance registers, built from the settings' defaults."""
    defaults = Settings.model_construct()  # defaults only: the environment plays no part
    metrics = Metrics(defaults.latency_buckets, defaults.max_batch)
    return [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]


def _described() -> list[tuple[str, str, Sequence[str], str]]:
    """(name, type, labels, help) of every metric one app instance exposes of its own."""
    found = [
        (str(m._name), str(m._type), m._labelnames, str(m._documentation))  # no public accessor
        for m in _metric_objects()
    ]
    for family in OneWorkerCpu().collect():  # a collector's series: their labels name them
        labels = list(family.samples[0].labels) if family.samples else []
        found.append((family.name, family.type, labels, family.documentation))
    return found


def metrics_rows(old: dict[str, Row]) -> list[Row]:
    rows: list[Row] = []
    for name, kind, labels, documentation in _described():
        exposed = f"`{name}_total`" if kind == "counter" else f"`{name}`"
        before = old.get(exposed)
        type_cell = before[1] if before and before[1].split()[0] == kind else kind
        meaning = before[3] if before else _sentence(documentation)
        rows.append([exposed, type_cell, ", ".join(f"`{label}`" for label in labels), meaning])
    return rows


def _replace(lines: list[str], header: str, rows: list[Row], where: Path) -> list[str]:
    start, end = _table_span(lines, header, where)
    return [*lines[: start + 2], *(_line(row) for row in rows), *lines[end:]]


def _table(lines: list[str], header: str, where: Path) -> list[str]:
    start, end = _table_span(lines, header, where)
    return lines[start:end]


def rendered() -> dict[Path, str]:
    """docs/service.md and README.md as they should read."""
    docs = DOCS.read_text().split("\n")
    docs = _replace(
        docs, SETTINGS_HEADER, settings_rows(_existing(docs, SETTINGS_HEADER, DOCS)), DOCS
    )
    docs = _replace(docs, METRICS_HEADER, metrics_rows(_existing(docs, METRICS_HEADER, DOCS)), DOCS)
    readme = README.read_text().split("\n")
    for header in (SETTINGS_HEADER, METRICS_HEADER):
        start, end = _table_span(readme, header, README)
        readme[start:end] = _table(docs, header, DOCS)
    return {DOCS: "\n".join(docs), README: "\n".join(readme)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m service.doctables",
        description="Check (or with --write, rewrite) the settings and metrics tables of "
        "docs/service.md and README.md against the code.",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the stale tables")
    args = parser.parse_args(argv)
    stale = [path for path, text in rendered().items() if path.read_text() != text]
    if args.write:
        for path, text in rendered().items():
            if path in stale:
                path.write_text(text)
                print(f"rewrote the tables of {path.relative_to(REPO)}", file=sys.stderr)
        return 0
    if stale:
        names = ", ".join(str(p.relative_to(REPO)) for p in stale)
        print(f"stale tables in {names}: run python -m service.doctables --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
