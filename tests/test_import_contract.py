"""The house's import rule, checked on every import statement (those inside functions included).

Layers, bottom up: files, images <- weights <- models <- faces <- identity <- evaluation, training,
live, library <- course <- service, cli, demo. A module may import its own layer and the layers
its row below allows; gallery storage (``identity/*store.py``, ``identity/search.py``) runs no
inference, so it imports neither faces nor models; ``style_transfer`` and ``facenet_keras`` never
import each other (the service alone may import ``style_transfer``, lazily). See docs/development.md, "Architecture".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASE = {"files", "images"}
INFERENCE = BASE | {"weights", "models", "faces", "identity"}
ALLOWED = {
    "files": set(),
    "images": {"files"},
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


def violations(root: Path = REPO) -> list[str]:
    """Every import that points up or sideways against the rule, as 'file:line: a -> b'."""
    out = []
    for pkg in ("facenet_keras", "style_transfer"):
        for path in sorted((root / pkg).rglob("*.py")):
            me = _layer(_module_name(path, root))
            storage = me == "identity" and (path.stem.endswith("store") or path.stem == "search")
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
        ("facenet_keras/identity/sqlite_store.py", "from facenet_keras.faces.pipeline import encode"),
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
