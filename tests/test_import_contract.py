"""The house's import rule, checked on every import statement (those inside functions included).

Layers, bottom up: files, jpeg_data, images <- weights <- models <- faces <- identity <- evaluation, training,
live, library <- course <- service, cli, demo. A module may import its own layer and the layers
its row below allows; gallery storage (``identity/stores/``, ``identity/search.py``,
``identity/pruning.py``) runs no inference, so it imports neither faces nor models;
``style_transfer`` and ``facenet_keras`` never import each other (the service alone may import
``style_transfer``, lazily). And no import circle anywhere in ``facenet_keras``: the graph of every
import statement between its modules has no cycle. See docs/development.md, "Architecture".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASE = {"files", "jpeg_data", "images"}
INFERENCE = BASE | {"weights", "models", "faces", "identity"}
ALLOWED = {
    "files": set(),
    "jpeg_data": set(),
    "images": {"files", "jpeg_data"},
    "weights": {"files"},
    "models": {"weights", "files"},
    "faces": {"models", "weights"} | BASE,
    "identity": {"faces", "models", "weights"} | BASE,
    "evaluation": INFERENCE,
    "training": INFERENCE,
    "live": INFERENCE,
    "library": INFERENCE,
    "course": INFERENCE,
    "service": INFERENCE | {"evaluation", "live", "library", "course", "style_transfer"},
    "cli": INFERENCE | {"evaluation", "training", "live", "library", "course", "service"},
    "demo": INFERENCE,
}
# the package's own front door: lazy re-exports and the 0.1 path aliases may name any module
UNCHECKED = {"__init__", "_moved", "__main__"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "style_transfer":
        return "style_transfer"
    if parts[0] != "facenet_keras" or len(parts) == 1:
        return None if parts[0] != "facenet_keras" else "__init__"
    return parts[1]


def _module_name(path: Path, root: Path = REPO) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path = REPO):
    """(line, imported module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if node.module is None or (node.level and mod.count(".") <= 1):
                # "from . import x": each name may be a sub-module
                for alias in node.names:
                    yield node.lineno, f"{mod}.{alias.name}"
            else:
                yield node.lineno, mod


STORAGE_MODULES = {("identity", "search.py"), ("identity", "pruning.py")}  # besides identity/stores/


def _is_storage(rel: Path) -> bool:
    """Gallery storage (the stores, the search they use): it stores and searches, never infers."""
    return rel.parts[:2] == ("identity", "stores") or rel.parts in STORAGE_MODULES


def violations(root: Path = REPO) -> list[str]:
    """Every import that points up or sideways against the rule, as 'file:line: a -> b'."""
    out = []
    for pkg in ("facenet_keras", "style_transfer"):
        for path in sorted((root / pkg).rglob("*.py")):
            me = _layer(_module_name(path, root))
            storage = _is_storage(path.relative_to(root / pkg))
            if pkg == "facenet_keras" and path.relative_to(root / pkg).parts[0].removesuffix(".py") in UNCHECKED:
                continue
            for line, target in _imports(path, root):
                other = _layer(target)
                if storage and other in {"faces", "models"}:
                    out.append(f"{path.relative_to(root)}:{line}: storage runs no inference, but imports {target}")
                    continue
                if other is None or other == me or other in UNCHECKED and me != "style_transfer":
                    continue
                if me == "style_transfer":
                    if target.startswith("facenet_keras"):
                        out.append(f"{path.relative_to(root)}:{line}: style_transfer -> {target}")
                    continue
                if other not in ALLOWED.get(me, set()):
                    out.append(f"{path.relative_to(root)}:{line}: {me} -> {target}")
    return out


def test_imports_point_down_only():
    found = violations()
    assert not found, "imports against the layering (docs/development.md, 'Architecture'):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "planted, layer",
    [
        ("facenet_keras/faces/pipeline.py", "from facenet_keras.training.losses import TripletLoss"),
        ("facenet_keras/identity/stores/sqlite.py", "from facenet_keras.faces.pipeline import encode"),
        ("facenet_keras/identity/stores/milvus.py", "from facenet_keras.models.encoder import load_encoder"),
        ("facenet_keras/models/encoder.py", "from facenet_keras.identity.search import pairwise_distances"),
        ("style_transfer/costs.py", "from facenet_keras.images import load_image"),
    ],
)
def test_an_upward_import_inside_a_function_is_caught(tmp_path, planted, layer):
    """Copy the package, plant one upward import inside a function body, and see it reported."""
    import shutil

    for pkg in ("facenet_keras", "style_transfer"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / planted
    target.write_text(target.read_text() + f"\n\ndef _planted():\n    {layer}\n")
    found = violations(tmp_path)
    assert any(f.startswith(planted) for f in found), found


# ---------------------------------------------------------------------------- no import circles
def import_graph(root: Path = REPO) -> dict[str, dict[str, int]]:
    """module -> {imported module: line} for every import statement between modules of
    ``facenet_keras`` (inside functions and ``if TYPE_CHECKING:`` too); ``from pkg import name``
    counts as importing ``pkg.name`` when that is a module, else ``pkg``."""
    modules = {_module_name(path, root): path for path in sorted((root / "facenet_keras").rglob("*.py"))}

    def resolve(target: str) -> str | None:
        parts = target.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for line, target in _imports(path, root):
            other = resolve(target)
            if other is not None and other != name:
                edges.setdefault(other, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan's algorithm, iterative): each as
    'module:line -> module' hops, closing where it started."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(group)
    return [_circle(graph, group) for group in groups]


def _circle(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """A shortest circle through the group's first module (breadth-first), as readable hops."""
    first = min(group)
    parent: dict[str, str] = {}
    queue = [first]
    while queue:
        node = queue.pop(0)
        for nxt in graph[node]:
            if nxt == first:
                path = [node]
                while path[-1] != first:
                    path.append(parent[path[-1]])
                path.reverse()
                hops = path + [first]
                return [f"{a}:{graph[a][b]} -> {b}" for a, b in zip(hops, hops[1:])]
            if nxt in group and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no circle through {first}")  # a strongly connected group always has one


def test_no_import_circles():
    found = cycles(import_graph())
    assert not found, "import circles in facenet_keras:\n" + "\n".join("  " + ", ".join(c) for c in found)


@pytest.mark.parametrize(
    "planted, line, circle",
    [  # the two circles identity held before issue 25, planted back inside a function
        (
            "facenet_keras/identity/stores/base.py",
            "from facenet_keras.identity.stores.sqlite import SQLiteStore",
            {"facenet_keras.identity.stores.base", "facenet_keras.identity.stores.sqlite"},
        ),
        (
            "facenet_keras/identity/recognition.py",
            "from facenet_keras.identity.gallery import FaceGallery",
            {"facenet_keras.identity.recognition", "facenet_keras.identity.gallery"},
        ),
    ],
)
def test_a_planted_import_circle_is_named(tmp_path, planted, line, circle):
    """Copy the package, plant an import that closes a circle inside a function body, and see the
    circle reported with the modules it runs through."""
    import shutil

    shutil.copytree(REPO / "facenet_keras", tmp_path / "facenet_keras", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / planted
    target.write_text(target.read_text() + f"\n\ndef _planted():\n    {line}\n")
    found = cycles(import_graph(tmp_path))
    assert len(found) == 1, found
    named = {hop.split(":")[0] for hop in found[0]}
    assert circle <= named, found
    assert found[0][0].startswith(min(named)) and found[0][-1].endswith(" -> " + min(named)), found


@pytest.mark.parametrize(
    "old, new",
    [
        ("identity.store", "identity.stores"),
        ("identity.sqlite_store", "identity.stores.sqlite"),
        ("identity.postgres_store", "identity.stores.postgres"),
        ("identity.milvus_store", "identity.stores.milvus"),
    ],
)
def test_the_stores_old_paths_still_import(old, new):
    """``facenet_keras.identity.store`` & co. (before ``identity/stores/``) are the new modules, with a warning."""
    import importlib
    import sys

    sys.modules.pop(f"facenet_keras.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"moved to facenet_keras.{new}"):
        module = importlib.import_module(f"facenet_keras.{old}")
    assert module is importlib.import_module(f"facenet_keras.{new}")
    if old == "identity.store":  # its names, those now in stores/urls.py included
        from facenet_keras.identity.stores.base import GalleryError
        from facenet_keras.identity.stores.urls import open_store

        assert module.GalleryError is GalleryError and module.open_store is open_store
