"""The layering rules, read from the source: no import cycle between edgeskin's modules (counting
imports inside functions too), and nothing below the CLI imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"edgeskin": REPO / "edgeskin", "edgeskin.converters": REPO / "converters", "edgeskin.runtime": REPO / "runtime"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGES.items():
        for file in root.rglob("*.py"):
            parts = [p for p in file.relative_to(root).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = file
    return found


def _import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # a module's own parent package is initialized before it anyway: not an edge
                if target and target != name and not name.startswith(target + "."):
                    graph.add_edge(name, target)
    return graph


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(_import_graph()) if len(c) > 1]
    assert not cycles, cycles


def test_nothing_below_the_cli_imports_it():
    graph = _import_graph()
    cli = {m for m in graph if m == "edgeskin.cli" or m.startswith("edgeskin.cli.")}
    assert {"edgeskin.cli", "edgeskin.cli.args", "edgeskin.cli.training"} <= cli  # the package really was found
    importers = {m for m in graph for target in graph.successors(m) if target in cli and m not in cli}
    assert not importers, importers
    assert graph.number_of_edges() > 50  # the graph really was read


def test_runtime_imports_nothing_from_the_torch_side():
    graph = _import_graph()
    runtime = {m for m in graph if m.startswith("edgeskin.runtime")}
    outside = {(m, t) for m in runtime for t in graph.successors(m) if t not in runtime}
    assert not outside, outside
