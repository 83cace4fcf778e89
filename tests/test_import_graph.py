"""The package's import graph follows the layer map below and has no cycle.

Every ``import`` statement in ``hwnas/`` counts, at module level or inside a function (a lazy import is
still a dependency). ``ALLOWED`` is the map of the package: each layer, and the layers it may import.
A layer is a subpackage (``hwnas/latency/``) or a top-level module (``hwnas/atomic.py``); ``hwnas`` is
the package's ``__init__``. An edge not in the map, or any cycle between modules, fails the test.
"""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "hwnas"
LEAVES = {"_C", "atomic", "journal", "stats", "plotting"}  # utilities that import nothing of ours

ALLOWED: dict[str, set[str]] = {
    **{leaf: set() for leaf in LEAVES},
    "hwnas": {"space"},                      # the package root: spaces eagerly, the rest lazily by name
    "space": set(),                          # search spaces, archs, op signatures: pure Python
    "data": set(),                           # datasets, loaders, transforms
    "nn": {"_C", "atomic", "space"},         # the supernet and its modules
    "formats": {"nn", "space", "atomic"},    # ONNX / TFLite writers from the network IR, int8 quantisers
    "latency": {"_C", "atomic", "journal", "plotting", "stats", "space", "nn", "formats", "hwnas"},
    "eval": {"data", "nn", "space", "formats"},  # evaluation data, preprocessing, subnet accuracy, torchrun helpers
    "train": {"eval", "data", "nn", "space", "atomic", "journal", "plotting"},
    "search": {"eval", "latency", "nn", "data", "space", "_C", "atomic", "journal", "plotting", "stats"},
    "export": {"eval", "formats", "latency", "nn", "data", "space", "atomic", "journal", "plotting", "stats"},
    "zoo": {"eval", "search", "latency", "nn", "data", "space", "atomic"},  # shipped supernets: find, check, build
    "demo": {"zoo", "eval", "train", "search", "export", "latency", "nn", "data", "space", "atomic", "plotting"},
    "cli": {"zoo", "demo", "eval", "train", "search", "export", "latency", "nn", "data", "space", "formats", "atomic",
            "journal", "hwnas"},
    "__main__": {"cli"},
}


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The hwnas modules an import statement loads (``from .x import y`` is ``x.y`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "hwnas"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
        if target.split(".")[0] != "hwnas":
            return []
    return [f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules) | {"hwnas._C"}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(_targets(name, is_package, node, known))
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "hwnas"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_layer_is_in_the_map():
    assert {layer(module) for module in import_graph()} | {"_C"} == set(ALLOWED)


def test_imports_only_go_in_the_allowed_directions():
    forbidden = sorted(f"{module} imports {target}" for module, targets in import_graph().items() for target in targets
                       if layer(target) != layer(module) and layer(target) not in ALLOWED[layer(module)])
    assert forbidden == []


def test_deploying_and_searching_never_import_the_trainer():
    offenders = sorted(f"{module} imports {target}" for module, targets in import_graph().items()
                       if layer(module) in ("export", "search", "eval", "latency") for target in targets
                       if layer(target) == "train")
    assert offenders == []


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_the_checker_sees_a_cycle_and_a_back_edge():
    """The checks above can fail: a planted cycle is found, and a back edge is not in the map."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "train" not in ALLOWED["export"] and "search" not in ALLOWED["latency"]
    node = ast.parse("from ..train.run import load_eval_data").body[0]
    assert _targets("hwnas.export.subnet", False, node, {"hwnas.train.run"}) == ["hwnas.train.run"]
