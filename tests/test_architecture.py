"""The drawing of the house, checked: two halves (training/, service/) and an evaluation room
(evaluation/), joined only through the ONNX contract (service/contract.py), with no import
cycles. Reads the source with `ast` (every import, also those inside functions), so nothing
is imported to check it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "training", "evaluation")
# What the other packages may use of the service: the contract and the CLI error helper.
SHARED = {"service.contract", "service.console"}
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
    assert {"service.contract", "training.export", "evaluation.cli"} <= names
    assert "service.contract" in project_imports("training.export")


def test_there_are_no_import_cycles() -> None:
    assert list(cycles()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_package_init_files_import_nothing(package: str) -> None:
    # `import service.contract` runs service/__init__.py: it must stay cheap for every user.
    assert imported(package) == frozenset()


def test_the_service_never_imports_training_evaluation_or_torch() -> None:
    for name in (m for m in modules() if in_package(m, "service")):
        wrong = {
            m for m in imported(name) if in_package(m, "training") or in_package(m, "evaluation")
        }
        assert not wrong, f"{name} imports {sorted(wrong)}"
        assert not imports_torch(name), f"{name} imports torch"


def test_the_contract_needs_only_onnx_and_numpy() -> None:
    external = {m.split(".")[0] for m in imported("service.contract")} - {"__future__"}
    allowed = {"onnx", "numpy", "google"}  # google.protobuf: onnx's own message types
    assert {m for m in external if not _stdlib(m)} <= allowed


@pytest.mark.parametrize(
    ("package", "other"), [("training", "evaluation"), ("evaluation", "training")]
)
def test_the_halves_meet_only_through_the_contract(package: str, other: str) -> None:
    for name in (m for m in modules() if in_package(m, package)):
        service = {m for m in project_imports(name) if in_package(m, "service")}
        assert service <= SHARED, f"{name} imports {sorted(service - SHARED)}"
        crossing = {m for m in project_imports(name) if in_package(m, other)}
        # evaluation reads the real data set with training's idx reader (numpy only)
        allowed = {"training.data", "training.folder"} if package == "evaluation" else set()
        assert crossing <= allowed, f"{name} imports {sorted(crossing - allowed)}"


def test_evaluation_needs_no_torch_except_to_retrain_its_network() -> None:
    for name in (m for m in modules() if in_package(m, "evaluation")):
        if name in EVALUATION_TORCH:
            continue
        heavy = [m for m in {name} | reachable(name) if imports_torch(m)]
        assert not heavy, f"{name} reaches torch through {heavy}"


def _stdlib(module: str) -> bool:
    import sys

    return module in sys.stdlib_module_names
