"""The drawing of the house, checked: a neutral core (core/: the ONNX contract, console
output, data sets) that training/, evaluation/ and service/ all import and that imports none
of them; the service in rooms along a request's way (http/ → api/ → pipeline/ → models/,
encoding/), with no import cycles. Reads the source with `ast` (every import, also those
inside functions), so nothing is imported to check it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "service", "training", "evaluation")
# The service's rooms, and the rooms each may import (besides itself and the service's
# root modules: settings, errors, metrics). Lower floors never reach up.
ROOMS: dict[str, set[str]] = {
    "service.http": set(),
    "service.api": {
        "service.pipeline",
        "service.models",
        "service.encoding",
        "service.http",
        "service.state",  # readiness: the gate before a model is used
        "service.v2",
    },
    # the Open Inference Protocol over gRPC: the same pipeline, tensors and access control
    "service.grpc": {
        "service.v2",
        "service.pipeline",
        "service.models",
        "service.encoding",
        "service.http",  # access control (keys, rate limits) and the status of each error
        "service.state",
    },
    # what v2 tensors and an infer mean, whichever protocol carries them
    "service.v2": {"service.pipeline", "service.models", "service.encoding"},
    "service.pipeline": {"service.models"},
    "service.models": set(),
    "service.encoding": set(),
}
ROOT_MODULES = {"service.settings", "service.errors", "service.metrics"}
# Rooms that never see HTTP: they take and return plain values.
NO_HTTP = ("service.pipeline", "service.models", "service.encoding", "service.v2")
HTTP_LIBRARIES = ("starlette", "fastapi", "uvicorn", "grpc")  # gRPC is a front end too
# The one evaluation module that needs torch: retraining the evaluator network.
EVALUATION_TORCH = {"evaluation.train_feature_net"}


@cache
def modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


@cache
def imported(name: str) -> frozenset[str]:
    """Every module `name` imports anywhere in its file (a submodule for `from pkg import m`)."""
    out = set()
    for node in ast.walk(ast.parse(modules()[name].read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                out.add(submodule if submodule in modules() else node.module)
    return frozenset(out)


def project_imports(name: str) -> set[str]:
    return {m for m in imported(name) if m in modules() and m != name}


def reachable(name: str) -> set[str]:
    """Project modules `name` imports, directly or through others."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for other in project_imports(todo.pop()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def imports_torch(name: str) -> bool:
    return any(m == "torch" or m.startswith("torch.") for m in imported(name))


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def cycles() -> Iterator[list[str]]:
    """One import cycle per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(v: str) -> Iterator[list[str]]:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(project_imports(v)):
            if w not in index:
                yield from visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                yield sorted(component)

    for v in sorted(modules()):
        if v not in index:
            yield from visit(v)


def test_the_walk_sees_the_packages() -> None:
    names = set(modules())
    assert {"core.contract", "service.api.samples", "training.export", "evaluation.cli"} <= names
    assert "core.contract" in project_imports("training.export")


def test_there_are_no_import_cycles() -> None:
    assert list(cycles()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_package_init_files_import_nothing(package: str) -> None:
    # `import core.contract` runs core/__init__.py: it must stay cheap for every user.
    assert imported(package) == frozenset()


def test_the_service_never_imports_training_evaluation_or_torch() -> None:
    for name in (m for m in modules() if in_package(m, "service")):
        wrong = {
            m for m in imported(name) if in_package(m, "training") or in_package(m, "evaluation")
        }
        assert not wrong, f"{name} imports {sorted(wrong)}"
        assert not imports_torch(name), f"{name} imports torch"


def test_the_contract_needs_only_onnx_and_numpy() -> None:
    # With what it takes from the core: its pixels and grid (core/pixels.py, numpy only).
    names = {"core.contract"} | reachable("core.contract")
    external = {m.split(".")[0] for n in names for m in imported(n)} - {"__future__", *PACKAGES}
    allowed = {"onnx", "numpy", "google"}  # google.protobuf: onnx's own message types
    assert {m for m in external if not _stdlib(m)} <= allowed


def test_the_core_imports_no_other_package() -> None:
    for name in (m for m in modules() if in_package(m, "core")):
        outside = {m for m in project_imports(name) if not in_package(m, "core")}
        assert not outside, f"{name} imports {sorted(outside)}"


@pytest.mark.parametrize(
    ("package", "other"),
    [
        ("training", "evaluation"),
        ("training", "service"),
        ("evaluation", "training"),
        ("evaluation", "service"),
    ],
)
def test_training_and_evaluation_meet_only_through_the_core(package: str, other: str) -> None:
    for name in (m for m in modules() if in_package(m, package)):
        crossing = {m for m in project_imports(name) if in_package(m, other)}
        assert not crossing, f"{name} imports {sorted(crossing)}"


def _room(name: str) -> str | None:
    return next((room for room in ROOMS if in_package(name, room)), None)


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_each_room_of_the_service_imports_only_the_rooms_below_it(room: str) -> None:
    allowed = ROOMS[room] | {room}
    for name in (m for m in modules() if in_package(m, room)):
        service = {m for m in project_imports(name) if in_package(m, "service")}
        wrong = {
            m
            for m in service
            if m not in ROOT_MODULES and not any(in_package(m, a) for a in allowed)
        }
        assert not wrong, f"{name} imports {sorted(wrong)}"


@pytest.mark.parametrize("room", NO_HTTP)
def test_the_pipeline_models_and_encoding_never_see_http(room: str) -> None:
    for name in (m for m in modules() if in_package(m, room)):
        http = {m for m in imported(name) if m.split(".")[0] in HTTP_LIBRARIES}
        assert not http, f"{name} imports {sorted(http)}"


def test_the_service_root_modules_stay_below_the_rooms() -> None:
    # settings, errors and metrics are used by every room: they import no room themselves.
    for name in ROOT_MODULES:
        rooms = {m for m in project_imports(name) if _room(m) is not None}
        assert not rooms, f"{name} imports {sorted(rooms)}"


def test_evaluation_needs_no_torch_except_to_retrain_its_network() -> None:
    for name in (m for m in modules() if in_package(m, "evaluation")):
        if name in EVALUATION_TORCH:
            continue
        heavy = [m for m in {name} | reachable(name) if imports_torch(m)]
        assert not heavy, f"{name} reaches torch through {heavy}"


def _stdlib(module: str) -> bool:
    import sys

    return module in sys.stdlib_module_names
