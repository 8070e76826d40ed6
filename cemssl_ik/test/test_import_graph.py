"""The package's imports run one way: resources/seeds <- kinematics <- models <- learning <- sim/safety
<- solver <- ros <- evaluation/cli/demo, with no cycle.

The graph is read from the source with ``ast`` (nothing is imported), lazy imports inside functions
included: a cycle or an upward edge is a design fault even where it does not fail at import time.
Imports of other packages (rclpy, moveit_msgs, ...) are not edges of this graph; ROS itself is
checked separately: only ``ros``, ``evaluation`` and the top-level scripts may import it, and
below ``ros`` only inside a function (an optional dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import PACKAGE_ROOT

PACKAGE = "cemssl_ik"
SOURCE = PACKAGE_ROOT / PACKAGE

#: layer of each top-level part of the package; a module may import its own layer and lower ones
LAYERS = {
    "": 0,  # the package's __init__ (its version)
    "resources": 0,
    "seeds": 0,
    "kinematics": 1,
    "models": 2,
    "learning": 3,
    "sim": 4,  # a simulated arm: a forward model for learning
    "safety": 4,  # the command safety layer of a real or simulated arm
    "kernels": 5,  # the solver's compiled kernels
    "solver": 5,
    "ros": 6,
    "evaluation": 7,
    "cli": 7,
    "demo": 7,
}

#: upward edges still in the code, each with what removes it; an entry whose edge is gone fails
#: the test, so the list only shrinks
KNOWN_UPWARD = {
}

#: external packages only ros, evaluation and the scripts import at module level
ROS_PACKAGES = ("rclpy", "rcl_interfaces", "cemssl_ik_interfaces", "moveit_msgs", "std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "std_srvs", "tf2_ros", "launch", "launch_ros")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]):
    """(imported name, line, lazy) for every import statement of ``module``; package-relative
    names resolved, ``from X import name`` resolved to the submodule ``X.name`` where there is one."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        lazy = id(node) not in top_level
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, lazy
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno, lazy


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    if part not in LAYERS:
        raise AssertionError(f"{module}: top-level part {part!r} has no layer; add it to LAYERS in {Path(__file__).name}")
    return LAYERS[part]


def _graph():
    modules = _modules()
    edges: dict[tuple[str, str], tuple[int, bool]] = {}
    external: list[tuple[str, str, int, bool]] = []
    for module, path in modules.items():
        for name, line, lazy in _imports(module, path, modules):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                edges.setdefault((module, name), (line, lazy))
            else:
                external.append((module, name, line, lazy))
    return modules, edges, external


def test_every_module_has_a_layer_and_the_graph_is_not_empty():
    modules, edges, _ = _graph()
    assert {"cemssl_ik.kinematics.chain", "cemssl_ik.ros.ik_service_node", "cemssl_ik.resources"} <= set(modules)
    assert len(edges) > 50
    for module in modules:
        _layer(module)


def test_no_upward_import():
    _, edges, _ = _graph()
    upward = {(a, b): where for (a, b), where in edges.items() if _layer(b) > _layer(a)}
    unexpected = [f"{a} (line {line}{', lazy' if lazy else ''}) imports {b}" for (a, b), (line, lazy) in upward.items() if (a, b) not in KNOWN_UPWARD]
    assert not unexpected, "imports against the layer order:\n" + "\n".join(unexpected)
    stale = [f"{a} -> {b}" for (a, b) in KNOWN_UPWARD if (a, b) not in upward]
    assert not stale, f"KNOWN_UPWARD lists edges that are gone (remove them): {stale}"


def _cycle(edges) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    _, edges, _ = _graph()
    cycle = _cycle(edges)  # a package's __init__ -> its submodules are edges too
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({("a", "b"), ("b", "c"), ("c", "a")}) == ["a", "b", "c", "a"]
    assert _cycle({("a", "b"), ("b", "c"), ("a", "c")}) is None


def test_ros_stays_in_ros_and_above():
    _, _, external = _graph()
    bad = [
        f"{m} (line {line}) imports {name} at module level"
        for m, name, line, lazy in external
        if name.split(".")[0] in ROS_PACKAGES and not lazy and _layer(m) < LAYERS["ros"]
    ]
    assert not bad, "the library below ros must import ROS only inside functions:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", ["cemssl_ik.kinematics.chain", "cemssl_ik.models.checkpoint", "cemssl_ik.learning.loop"])
def test_resolution_of_relative_imports(module):
    modules, edges, _ = _graph()
    targets = {b for a, b in edges if a == module}
    assert targets, f"{module}: no package import found"
    assert all(t in modules or t == PACKAGE for t in targets), targets
