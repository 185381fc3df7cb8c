"""An on-disk cache of photo embeddings, so a second evaluation run skips detection and encoding.

An entry is keyed by the sha256 of the photo file's bytes (not its name: renaming or copying a
photo still hits, editing it misses) together with a *namespace*: everything that can change an
embedding (:func:`facenet_keras.faces.pipeline.embedding_key`: package version, encoder and the
digest of its weights, detector and alignment settings, mirrored-chip averaging, and the source of
the code that computes embeddings) plus what was stored (e.g. "the primary face"). Two models,
two package versions or two versions of the pipeline's code never share entries.

Layout: ``<root>/embeddings/<namespace digest>/<sha[:2]>/<sha>.npy``, one small ``.npy`` per photo
holding a float32 array: the embedding, shape (D,), or shape (0,) for "no face found" (so failures
are cached too). ``<root>`` is ``$FACENET_KERAS_HOME`` or ``~/.cache/facenet-keras``.

Writes go to a temporary file in the same folder and are renamed into place (atomic on POSIX and
Windows), so a crash or a concurrent run never leaves a half-written entry under the final name.
An entry that cannot be read back (truncated, corrupt, wrong type) is deleted and reported as a
miss, to be recomputed: the cache can always be rebuilt and never makes a run fail.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from facenet_keras.files import atomic_write, private_dir, sha256_file

__all__ = ["EmbeddingCache", "cache_root", "file_digest", "MISSING"]

MISSING = object()


def cache_root() -> Path:
    """The package's cache folder: ``$FACENET_KERAS_HOME`` if set, else ``~/.cache/facenet-keras``."""
    from facenet_keras.weights.cache import cache_dir

    return cache_dir()


# The cache keys photos by the sha256 of their bytes (the package's one file digest).
file_digest = sha256_file


class EmbeddingCache:
    """Embeddings of photos, persisted per namespace (model + pipeline + what is stored).

    ``get(path)`` returns the cached array, ``None`` for a cached "no face", or raises ``KeyError``
    on a miss; ``get_or_compute(path, fn)`` fills misses with ``fn(path)`` (an embedding or None).
    Keys can also be given as a precomputed digest (``digest=``) to hash each file only once.
    """

    def __init__(self, namespace: str, root: str | os.PathLike | None = None):
        if not namespace:
            raise ValueError("the cache namespace (model/pipeline id) must not be empty")
        self.namespace = namespace
        self.root = Path(root) if root is not None else cache_root()
        ns = hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:24]
        self.directory = self.root / "embeddings" / ns
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"EmbeddingCache({self.namespace!r}, directory={str(self.directory)!r})"

    # -- keys -------------------------------------------------------------------------------
    def _entry(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.directory / digest[:2] / f"{digest}.npy"

    # -- read -------------------------------------------------------------------------------
    def _read(self, digest: str):
        entry = self._entry(digest)
        try:
            with open(entry, "rb") as f:
                value = np.load(f, allow_pickle=False)
            if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != np.float32:
                raise ValueError("unexpected entry")
            if value.size and not np.isfinite(value).all():
                raise ValueError("non-finite embedding")
        except FileNotFoundError:
            return MISSING
        except (OSError, ValueError, EOFError):
            # corrupt or foreign entry: drop it and recompute (never crash on a cache)
            try:
                entry.unlink()
            except OSError:
                pass
            return MISSING
        return value if value.size else None

    def get(self, path: str | os.PathLike | None = None, *, digest: str | None = None):
        """The cached embedding (D,) float32, None for a cached "no face"; KeyError on a miss."""
        digest = digest or file_digest(path)
        value = self._read(digest)
        if value is MISSING:
            raise KeyError(digest)
        return value

    def __contains__(self, digest: str) -> bool:
        return self._read(digest) is not MISSING

    # -- write ------------------------------------------------------------------------------
    def put(self, value, path: str | os.PathLike | None = None, *, digest: str | None = None) -> None:
        """Store an embedding (any 1-D float array) or None ("no face found"). Best effort: a
        read-only or full disk only loses the cache entry, never the run."""
        digest = digest or file_digest(path)
        array = np.zeros((0,), np.float32) if value is None else np.asarray(value, np.float32).reshape(-1)
        entry = self._entry(digest)
        try:
            private_dir(entry.parent)
            with atomic_write(entry) as f:
                np.save(f, array, allow_pickle=False)
        except OSError:
            pass

    def get_or_compute(self, path: str | os.PathLike, compute, *, digest: str | None = None):
        """Cached value for ``path``, or ``compute(path)`` (an embedding or None), stored first."""
        digest = digest or file_digest(path)
        value = self._read(digest)
        if value is not MISSING:
            self.hits += 1
            return value
        self.misses += 1
        value = compute(path)
        self.put(value, digest=digest)
        return None if value is None else np.asarray(value, np.float32).reshape(-1)

    def clear(self) -> None:
        """Delete every entry of this namespace."""
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)
