"""The import graph follows the layers of the design: no module imports from a higher layer,
and the packages' graph has no circle (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import mixprec

LAYERS = {
    "files": 1, "provenance": 1, "progress_bars": 1,
    "quant": 2,
    "data": 3, "models": 3, "workloads": 3,
    "kernels": 4, "sensitivity": 4,
    "deploy": 5,
    "cost_models": 6,
    "search": 7,
    "report": 8, "studies": 8,
    "cli": 9,
}
"""Package (or top-level module) of ``mixprec`` -> its layer; imports point down or across."""
FACADES = {"__init__", "__main__"}
"""Top-level modules that only re-export or start the command."""
ROOT = Path(mixprec.__file__).parent


def _component(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imported(tree: ast.AST) -> set[str]:
    """The ``mixprec`` components a module imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = ([f"mixprec.{alias.name}" for alias in node.names]
                     if node.module == "mixprec" else [node.module])
        else:
            continue
        found |= {name.split(".")[1] for name in names
                  if name.startswith("mixprec.") and name.split(".")[1] != "__version__"}
    return found


def package_graph() -> dict[str, dict[str, list[str]]]:
    """Component -> component it imports -> the modules that do."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = _component(path)
        if source in FACADES:
            continue
        for target in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            if target != source:
                graph.setdefault(source, {}).setdefault(target, []).append(
                    str(path.relative_to(ROOT)))
    return graph


def test_every_component_has_a_layer():
    components = {_component(p) for p in ROOT.rglob("*.py")} - FACADES
    assert components <= set(LAYERS), f"components without a layer: {components - set(LAYERS)}"


def test_no_import_points_up():
    upward = [f"{module} imports mixprec.{target} (layer {LAYERS[target]} above "
              f"{source}'s {LAYERS[source]})"
              for source, targets in package_graph().items()
              for target, modules in targets.items() if LAYERS[target] > LAYERS[source]
              for module in modules]
    assert upward == []


def test_the_packages_import_graph_has_no_circle():
    graph = {source: set(targets) for source, targets in package_graph().items()}
    state: dict[str, str] = {}

    def circle_from(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path + [node, nxt]
            if nxt not in state and (found := circle_from(nxt, path + [node])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            assert circle_from(start, []) is None
