"""The rooms of the house in one order, and the imports that go against it (issue 24).

The graph is built from the code itself: every `import` and `from … import` anywhere in a module
(module level, inside functions, under `TYPE_CHECKING`), relative ones resolved, and
`from callrec.pkg import submodule` counted as an import of that submodule. A room is a top-level
package or module of `callrec`; ORDER lists them from the bottom (errors) to the top (cli).

Today this is a ratchet, not yet the rule: the upward room edges and the largest import cycle
that exist are written down below, and the test fails on any new upward edge or a larger cycle.
Each one removed is taken off the list; the goal (issue 24) is an empty list and no cycle. The
figures (cycles, upward edges, longest function, largest class) go to
tests/artifacts/layers.json and are printed with `pytest -s tests/test_layers.py`.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "firmware" / "callrec"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# Bottom to top: a room may import only rooms before it.
# control is the API every front end offers (the commands, their errors, the Device they act on):
# it needs only config and errors, and core, recording and mqtt speak it, so it sits low.
ORDER = ["errors", "events", "config", "control", "clock", "store", "dsp", "isdn", "line", "audio", "evidence",
         "privacy", "recording", "archive", "core", "mqtt", "console", "viewer", "app", "sim", "cli", "__main__"]

# What exists today, to be taken down to nothing (issue 24): (importer, imported) rooms.
KNOWN_UPWARD = {
    ("config", "privacy"), ("console", "app"), ("dsp", "audio"), ("dsp", "isdn"), ("events", "store"),
    ("evidence", "archive"), ("evidence", "privacy"),
}
LARGEST_CYCLE_NOW = 28   # modules in the largest strongly connected set of imports (2026-12-08)


def module_name(path: Path) -> str:
    parts = ["callrec", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(module: str, path: Path) -> Iterator[str]:
    """Every callrec module this one imports, wherever the import statement is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "callrec":
                    yield _known(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "callrec":
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if submodule in MODULES else _known(source)


def _known(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


@dataclass
class Graph:
    edges: dict[str, set[str]]

    @classmethod
    def build(cls) -> Graph:
        return cls({m: {t for t in imports_of(m, p) if t != m} for m, p in MODULES.items()})

    def cycles(self) -> list[list[str]]:
        """Strongly connected sets of more than one module (Tarjan, iteratively)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[list[str]] = []
        counter = 0
        for root in self.edges:
            if root in index:
                continue
            work = [(root, iter(sorted(self.edges[root])))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                for child in children:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.edges.get(child, ())))))
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index[child])
                else:
                    work.pop()
                    if work:
                        low[work[-1][0]] = min(low[work[-1][0]], low[node])
                    if low[node] == index[node]:
                        members = []
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            members.append(member)
                            if member == node:
                                break
                        if len(members) > 1:
                            found.append(sorted(members))
        return sorted(found, key=len, reverse=True)

    def upward(self) -> dict[tuple[str, str], list[str]]:
        """Room edges against ORDER, each with the module imports that make it."""
        rank = {name: n for n, name in enumerate(ORDER)}
        against: dict[tuple[str, str], list[str]] = {}
        for source, targets in self.edges.items():
            for target in targets:
                a, b = room(source), room(target)
                if a != b and a in rank and b in rank and rank[b] > rank[a]:
                    against.setdefault((a, b), []).append(f"{source} -> {target}")
        return against


def longest(kind: type[ast.AST]) -> tuple[int, str]:
    best = (0, "")
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, kind):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > best[0]:
                    best = (size, f"{module}.{node.name}")
    return best


def figures(graph: Graph) -> dict[str, object]:
    cycles = graph.cycles()
    upward = graph.upward()
    function = max(longest(ast.FunctionDef), longest(ast.AsyncFunctionDef))
    cls = longest(ast.ClassDef)
    return {
        "modules": len(MODULES),
        "imports": sum(len(t) for t in graph.edges.values()),
        "cycles": [len(c) for c in cycles],
        "largest_cycle": cycles[0] if cycles else [],
        "upward_room_edges": {f"{a} -> {b}": sorted(v) for (a, b), v in sorted(upward.items())},
        "longest_function": {"lines": function[0], "name": function[1]},
        "largest_class": {"lines": cls[0], "name": cls[1]},
    }


def test_every_room_has_its_place_in_the_order():
    rooms = {room(m) for m in MODULES} - {"__init__", "assets"}
    assert sorted(rooms - set(ORDER)) == [], "a new room: give it its place in ORDER (and docs/architecture.md)"


def test_the_figures_are_written_and_no_import_goes_further_against_the_order():
    graph = Graph.build()
    found = figures(graph)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "layers.json").write_text(json.dumps(found, indent=2) + "\n")
    cycles = found["cycles"]
    assert isinstance(cycles, list)
    print(f"\n{found['modules']} modules, {found['imports']} imports; cycles (modules each): {cycles}; "
          f"upward room edges: {len(found['upward_room_edges'])}; longest function "
          f"{found['longest_function']}; largest class {found['largest_class']}")
    new = sorted(set(graph.upward()) - KNOWN_UPWARD)
    assert new == [], {f"{a} -> {b}": graph.upward()[(a, b)] for a, b in new}
    assert not cycles or cycles[0] <= LARGEST_CYCLE_NOW, f"a larger import cycle: {found['largest_cycle']}"


def test_the_graph_sees_lazy_type_checking_and_submodule_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from callrec.store import Journal\n"
                      "def f():\n    from callrec.config import model\n    import callrec.events.bus\n"
                      "    from . import errors\n")
    assert set(imports_of("callrec.m", module)) == {"callrec.store", "callrec.config.model", "callrec.events.bus",
                                                    "callrec.errors"}
