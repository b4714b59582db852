"""The import graph points down only: entry points -> processes (watcher, worker) -> library (flatqc) -> qc.

Read from the source with ``ast`` (every import, also those inside functions), so a violation fails here before it
becomes a habit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qc.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("flatqc.cli", "flatqc.__main__", "flatqc.commands", "flatqc.up", "flatqc.demo", "flatqc.web")
"""Modules that compose processes (``flatqc up``, the CLI verbs, the demo) or serve pages."""


def layer(module: str) -> int:
    """0 qc (pure science), 1 library, 2 processes, 3 entry points."""
    if module == "qc" or module.startswith("qc."):
        return 0
    if module.startswith(("watcher", "worker")):
        return 2
    if any(module == e or module.startswith(e + ".") for e in ENTRY_POINTS):
        return 3
    return 1


def modules() -> dict[str, Path]:
    found = {}
    for package in ("qc", "flatqc", "watcher", "worker"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path) -> set[str]:
    """Every project module ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    known = modules()
    return {n for n in names if n in known and n.split(".")[0] in ("qc", "flatqc", "watcher", "worker")}


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_down(module: str) -> None:
    upward = sorted(m for m in imports_of(modules()[module]) if layer(m) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports a higher layer: {upward}"


def test_the_web_only_queues_jobs() -> None:
    """The dashboard reads the database and queues jobs: of the processes it imports only the calls that queue a
    worker's jobs, never the watcher."""
    offending = {}
    for module, path in modules().items():
        if not module.startswith("flatqc.web"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            wrong = [n for n in names if layer(n) == 2 and not n.startswith("worker.jobs.enqueue_")]
            if wrong:
                offending[module] = wrong
    assert offending == {}


def test_the_layer_rule_sees_a_violation() -> None:
    """The check itself can fail: a library module importing the watcher is caught."""
    assert layer("flatqc.lifecycle.sets") == 1 and layer("watcher.core") == 2
    assert layer("flatqc.commands.operations") == 3 and layer("watcher.core") > layer("flatqc.lifecycle.sets")
    assert "flatqc.lifecycle.sets" in imports_of(ROOT / "watcher" / "regroup.py")


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing itself) in ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    """Between modules; a module's import of its own package (``from flatqc.web import queries``) is not a cycle."""
    graph = {module: {m for m in imports_of(path) if not (module == m or module.startswith(m + "."))}
             for module, path in modules().items()}
    assert import_cycles(graph) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def instrument_comparisons(path: Path) -> list[str]:
    """``path:line`` of every comparison with a profile's name, QC1 table or settings name (``== "crires+"``)."""
    names = {value for p in PROFILES.values() for value in (p.name, p.table, p.settings_name)}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_profiles_tell_instruments_apart() -> None:
    """What differs between CRIRES and CRIRES+ is a field of :class:`qc.profiles.InstrumentProfile`: no module
    compares with an instrument's name, table or settings name (the synthetic nights pick their writer by name)."""
    allowed = {"qc.profiles", "qc.synth"}
    found = [hit for module, path in modules().items() if module not in allowed
             for hit in instrument_comparisons(path)]
    assert found == []
