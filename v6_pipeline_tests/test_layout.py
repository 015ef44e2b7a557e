"""The package's arrows point one way: no folder imports a folder that imports it back.

Pure core (the top-level modules: `reconcile.py`, `confirm.py`, `judging.py`, ...) <-
IB side (`ib/`) and lake side (`lake/`), `stream/`, `alerts/` <- Dagster definitions
(`defs/`) <- the shell (`run/`, `demo/`, `doctor/`) <- the CLI (`cli/`, one module per
`v6` verb), the top layer: nothing imports it. Each module's imports are read from its
source (every `import`, including those inside functions and `TYPE_CHECKING` blocks), so
a loop hidden in a function is a loop too.

A module in a folder counts as its folder (`ib/gateway/server.py` is `ib/`); a top-level
module counts as itself, so a top-level module must not import a folder that imports
it back either.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import v6_pipeline

PACKAGE = Path(v6_pipeline.__file__).parent
NAME = "v6_pipeline"

# (importer's node, imported node) -> "path/of/importer.py imports v6_pipeline.x.y"
Edges = dict[tuple[str, str], list[str]]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _node(module: str) -> str | None:
    """The folder (`ib/`) or top-level module (`reconcile.py`) `module` belongs to;
    None for the package itself and anything outside it."""
    parts = module.split(".")
    if parts[0] != NAME or len(parts) == 1:
        return None
    if (PACKAGE / parts[1]).is_dir():
        return f"{parts[1]}/"
    return f"{parts[1]}.py"


def _imported(path: Path, tree: ast.AST) -> list[str]:
    """Every module of the package `path` imports (a name imported from a package may
    be a module: `from v6_pipeline import settings`)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.append(source)
            found += [f"{source}.{alias.name}" for alias in node.names]
    return [name for name in found if _is_module(name)]


def _is_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] != NAME:
        return False
    where = PACKAGE.joinpath(*parts[1:])
    return where.is_dir() or where.with_suffix(".py").is_file()


def _edges() -> Edges:
    edges: Edges = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _node(_module_name(path))
        if source is None:
            continue
        for name in _imported(path, ast.parse(path.read_text(), filename=str(path))):
            target = _node(name)
            if target is not None and target != source:
                edges[source, target].append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return edges


def _loops(edges: Edges) -> list[str]:
    """A sentence per pair of nodes importing each other, naming the imports each way."""
    loops = []
    for a, b in sorted(edges):
        if a < b and (b, a) in edges:
            loops.append(
                f"{a} and {b} import each other: "
                + "; ".join(sorted(set(edges[a, b])) + sorted(set(edges[b, a])))
            )
    return loops


def _cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected groups of nodes (a loop of any length), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_folder_imports_a_folder_that_imports_it_back() -> None:
    loops = _loops(_edges())
    assert not loops, "\n".join(loops)


def test_no_longer_loop_between_folders() -> None:
    cycles = _cycles(_edges())
    assert not cycles, "\n".join(" -> ".join(group) for group in cycles)


def test_nothing_imports_the_cli() -> None:
    imports = sorted(
        found for (source, target), seen in _edges().items() if target == "cli/" for found in seen
    )
    assert not imports, "\n".join(imports)


def test_the_walk_sees_the_arrows_it_must_see() -> None:
    """The walk is not vacuous: it sees imports at the top, inside functions and of a
    module named in `from v6_pipeline import ...`."""
    edges = _edges()
    assert ("defs/", "lake/") in edges
    assert ("run/", "defs/") in edges
    assert ("cli/", "run/") in edges  # `v6 reconcile` imports the runner inside `run`
    assert ("alerts/", "settings.py") in edges  # `from v6_pipeline import settings as s`
    assert ("judging.py", "reconcile.py") in edges


def test_a_loop_is_named_with_its_imports() -> None:
    edges: Edges = {
        ("defs/", "run/"): ["v6_pipeline/defs/a.py imports v6_pipeline.run.b"],
        ("run/", "defs/"): ["v6_pipeline/run/b.py imports v6_pipeline.defs.a"],
        ("run/", "lake/"): ["v6_pipeline/run/b.py imports v6_pipeline.lake"],
    }
    assert _loops(edges) == [
        "defs/ and run/ import each other: v6_pipeline/defs/a.py imports v6_pipeline.run.b; "
        "v6_pipeline/run/b.py imports v6_pipeline.defs.a"
    ]
    assert _cycles({**edges, ("lake/", "defs/"): ["x"]}) == [["defs/", "lake/", "run/"]]
