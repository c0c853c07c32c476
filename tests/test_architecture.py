"""The package's import structure: the graph of mocodec modules importing mocodec modules has no cycle.

Every module of the package is parsed (never imported) and every ``import`` / ``from ... import``
of a mocodec module counts as an edge, at module level and inside functions alike (a function-level
import is a cycle waiting for its first call). Relative imports are resolved; ``from pkg import name``
is an edge to ``pkg.name`` where that is a module, else to ``pkg`` (a package's ``__init__`` and its
re-exports). Importing ``pkg.sub`` runs ``pkg/__init__`` first, so it is an edge to ``pkg`` as well,
unless the importer is inside ``pkg``. Imports under ``if TYPE_CHECKING:`` never run, so they are
not edges.

The commands that must start fast (``--help``, ``list``, ``compress`` / ``decompress`` with a
classic codec) are also run with ``python -X importtime``: they import torch, never the heavy
libraries behind learned codecs, distortion terms and judges.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PACKAGE = "mocodec"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
# Seconds to import each (CompressAI: torch_geometric for its point clouds): only the code that builds such a model imports them.
HEAVY = {
    "compressai",
    "torch_geometric",
    "open_clip",
    "lpips",
    "transformers",
    "ultralytics",
    "timm",
    "torchvision",
    "skimage",
    "matplotlib",
    "pycocotools",
    "scipy",
    "pytorch_lightning",
    "lightning",
    "wandb",
    "plotly",
    "selenium",
}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, outside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The mocodec modules that module ``name`` (file ``path``) imports anywhere in its code."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:  # relative: resolved against the importing module's package
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        for alias in node.names:
            found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
    # Importing ``pkg.sub`` runs ``pkg/__init__`` first: an edge to every enclosing package the importer is not in.
    for module in list(found):
        parts = module.split(".")
        found.update(
            ".".join(parts[:i])
            for i in range(1, len(parts))
            if not (name == ".".join(parts[:i]) or name.startswith(".".join(parts[:i]) + "."))
        )
    return {m for m in found if m in modules and m != name}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> ... -> a``) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, set(component)) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest cycle through the component's first module (breadth-first inside the component)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_the_graph_sees_function_level_relative_and_submodule_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from mocodec import a  # a re-export\n")
    (package / "a.py").write_text("def f():\n    from mocodec.sub import b\n")
    (package / "sub" / "__init__.py").write_text("from .c import name\n")
    (package / "sub" / "b.py").write_text("from .. import a\nimport mocodec.sub.c\nimport json\n")
    (package / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mocodec import a\nname = 1\n")
    graph = import_graph(package)
    assert graph == {
        "mocodec": {"mocodec.a"},
        "mocodec.a": {"mocodec.sub", "mocodec.sub.b"},  # importing mocodec.sub.b runs mocodec/sub/__init__ first
        "mocodec.sub": {"mocodec.sub.c"},
        "mocodec.sub.b": {"mocodec.a", "mocodec.sub.c"},
        "mocodec.sub.c": set(),
    }
    assert find_cycles(graph) == [["mocodec.a", "mocodec.sub.b", "mocodec.a"]]


def test_a_cycle_through_a_package_init_is_a_cycle(tmp_path):
    package = tmp_path / PACKAGE
    (package / "tasks").mkdir(parents=True)
    (package / "data").mkdir()
    for init in (package / "__init__.py", package / "data" / "__init__.py"):
        init.write_text("")
    (package / "tasks" / "__init__.py").write_text("from mocodec.tasks import detection\n")
    (package / "tasks" / "base.py").write_text("class Sample: ...\n")
    (package / "tasks" / "detection.py").write_text("from mocodec.data.coco import read\n")
    (package / "data" / "coco.py").write_text("from mocodec.tasks.base import Sample\n")
    assert find_cycles(import_graph(package)) == [["mocodec.data.coco", "mocodec.tasks", "mocodec.tasks.detection", "mocodec.data.coco"]]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def imported_packages(*args: str, cwd: Path) -> set[str]:
    """The top-level packages ``python -m mocodec ARGS`` imports (from ``-X importtime``); the command must succeed."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", PACKAGE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line.split("|") for line in run.stderr.splitlines() if line.startswith("import time:") and line.count("|") == 2]
    return {name.strip().split(".")[0] for _, _, name in lines[1:]}


@pytest.mark.parametrize(
    "args", [["--help"], ["list"], ["compress", "photo.png", "photo.moc", "--codec", "jpeg"], ["decompress", "ready.moc", "decoded.png"]]
)
def test_fast_commands_import_no_heavy_library(args, tmp_path):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "photo.png")
    if args[0] == "decompress":
        imported_packages("compress", "photo.png", "ready.moc", "--codec", "webp", cwd=tmp_path)
    heavy = imported_packages(*args, cwd=tmp_path) & HEAVY
    assert not heavy, f"`mocodec {' '.join(args)}` imports {', '.join(sorted(heavy))}"
