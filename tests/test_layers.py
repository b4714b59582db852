"""The import graph points down only: entry points -> processes (watcher, worker) -> library (flatqc) -> qc.

Read from the source with ``ast`` (every import, also those inside functions, and every string), so a violation
fails here before it becomes a habit.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from qc.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("flatqc.cli", "flatqc.__main__", "flatqc.commands", "flatqc.up", "flatqc.demo", "flatqc.compose",
                "flatqc.web")
"""Modules that compose processes (``flatqc up``, the CLI verbs, the demo, what they share in ``compose``) or serve
pages."""
LAYERS = (
    ("core", ("qc",)),
    ("library", ("flatqc",)),
    ("processes", ("watcher", "worker")),
    ("entry points", ENTRY_POINTS),
)
"""Every layer, bottom up, by the modules it holds (a module is in the highest layer naming a prefix of it)."""
PROCESSES = 2
WEB = "flatqc.web"
"""An entry point that composes no process: it queues through the queue it is given and names no process."""
OUTSIDE = ("bench", "tests")
"""Packages outside the layers: they may use any of them."""


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer(module: str) -> int:
    """0 core (pure science), 1 library, 2 processes, 3 entry points; an unknown package fails."""
    found = [i for i, (_, prefixes) in enumerate(LAYERS) if any(within(module, p) for p in prefixes)]
    if not found:
        raise ValueError(f"{module} is in no layer: name its package in LAYERS (or OUTSIDE)")
    return max(found)


def may_name(module: str, target: str) -> bool:
    """Whether ``module`` may name ``target`` (import it, or spell it in a string): a layer below or its own, and
    for the web no process either."""
    if layer(target) > layer(module):
        return False
    return not (within(module, WEB) and layer(target) == PROCESSES)


def modules() -> dict[str, Path]:
    found = {}
    for package in sorted(p.parent for p in ROOT.glob("*/__init__.py")):
        if package.name in OUTSIDE:
            continue
        for path in package.rglob("*.py"):
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
    return names & modules().keys()


DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def named_in_strings(path: Path) -> set[str]:
    """Every project module a string of ``path`` names (docstrings included): a dotted name that is a module, or
    starts with one (``"worker.jobs.run_set_qc"``)."""
    known = modules().keys()
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for dotted in DOTTED.findall(node.value):
                parts = dotted.split(".")
                names |= {".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in known}
    return names


def test_every_module_is_in_a_layer() -> None:
    assert all(layer(module) in range(len(LAYERS)) for module in modules())
    assert {name for name, _ in LAYERS} == {"core", "library", "processes", "entry points"}


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_down(module: str) -> None:
    """Also: the web imports no process (it is handed the queue; nothing of worker/ is let through)."""
    wrong = sorted(m for m in imports_of(modules()[module]) if not may_name(module, m))
    assert not wrong, f"{module} (layer {LAYERS[layer(module)][0]}) imports what it may not: {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in modules() if layer(m) < len(LAYERS) - 1 or within(m, WEB)))
def test_no_string_names_a_module_above(module: str) -> None:
    """Below the entry points (and in the web) no string names a module above it, not a job function's dotted path
    either: those are handed in by the entry points (:data:`flatqc.compose.WORKER_JOBS`)."""
    wrong = sorted(m for m in named_in_strings(modules()[module]) if not may_name(module, m))
    assert not wrong, f"{module} (layer {LAYERS[layer(module)][0]}) names in a string what it may not: {wrong}"


def bare_calls(path: Path) -> list[int]:
    """Lines of statements at module level that do something when imported: anything but imports, definitions,
    assignments, docstrings, ``if TYPE_CHECKING:`` and ``if __name__ == "__main__":``."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                      | ast.Assign | ast.AnnAssign):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "__name__ == '__main__'"):
            continue
        found.append(node.lineno)
    return found


SCRIPTS = ("flatqc.migrations.env",)
"""Modules run as scripts (Alembic runs its environment), not imported."""


@pytest.mark.parametrize("module", sorted(m for m in modules() if layer(m) < len(LAYERS) - 1 and m not in SCRIPTS))
def test_importing_does_nothing_else(module: str) -> None:
    """Below the entry points, importing a module defines things and does nothing else (no at-fork hooks, signal
    handlers, backends chosen): a process's start does that, explicitly."""
    assert bare_calls(modules()[module]) == []


def test_the_layer_rules_see_a_violation(tmp_path: Path) -> None:
    """The checks themselves can fail: a library module importing the watcher, the web importing the worker's
    jobs, a job path in a string of the library, an at-fork hook registered on import."""
    assert layer("flatqc.lifecycle.sets") == 1 and layer("watcher.core") == 2
    assert layer("flatqc.commands.operations") == 3
    assert layer("flatqc.compose") == 3 and layer("flatqc.web.views.sets") == 3
    assert not may_name("flatqc.lifecycle.sets", "watcher.core")
    assert not may_name("flatqc.web.views.sets", "worker.jobs") and may_name("flatqc.commands.operations", "worker.run")
    assert "flatqc.lifecycle.sets" in imports_of(ROOT / "watcher" / "regroup.py")
    with pytest.raises(ValueError, match="in no layer"):
        layer("elsewhere.module")
    source = tmp_path / "library.py"
    source.write_text('import os\n\nJOB = "worker.jobs.run_set_qc"\n\nos.register_at_fork(after_in_child=print)\n')
    assert named_in_strings(source) == {"worker", "worker.jobs"}
    assert bare_calls(source) == [5]


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
    compares with an instrument's name, table or settings name (the synthetic nights pick their writer by name;
    a migration revision is frozen history and names the tables of its time)."""
    allowed = {"qc.profiles", "qc.synth"}
    found = [hit for module, path in modules().items()
             if module not in allowed and not module.startswith("flatqc.migrations.versions.")
             for hit in instrument_comparisons(path)]
    assert found == []
