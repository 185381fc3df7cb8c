"""Aliases for module paths that moved: those of release 0.1 (``facenet_keras.gallery``,
``.pipeline``, ...), which went into subpackages, and the gallery stores, which went into
``identity/stores/``. ``import facenet_keras.gallery`` still works for one release and warns where the
module now lives; the alias is the new module object itself, not a copy."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module path (under facenet_keras) -> where it lives now
MOVED = {
    "detection": "faces.detection",
    "landmarks": "faces.landmarks",
    "alignment": "faces.alignment",
    "pipeline": "faces.pipeline",
    "annotate": "faces.annotate",
    "encoder": "models.encoder",
    "layers": "models.layers",
    "gallery": "identity.gallery",
    "search": "identity.search",
    "recognition": "identity.recognition",
    "embedding_cache": "evaluation.embedding_cache",
    "plots": "evaluation.plots",
    "losses": "training.losses",
    "data": "training.data",
    "siamese": "training.siamese",
    # the gallery stores (0.3): identity.store's names are re-exported by the stores package
    "identity.store": "identity.stores",
    "identity.sqlite_store": "identity.stores.sqlite",
    "identity.postgres_store": "identity.stores.postgres",
    "identity.milvus_store": "identity.stores.milvus",
}
_PACKAGE = __name__.rsplit(".", 1)[0]


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {self.target}; the old path goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.partition(".")
        if package != _PACKAGE or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"{_PACKAGE}.{MOVED[old]}"))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once (after the normal finders)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
