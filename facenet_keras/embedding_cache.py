"""An on-disk cache of photo embeddings, so a second evaluation run skips detection and encoding.

An entry is keyed by the sha256 of the photo file's bytes (not its name: renaming or copying a
photo still hits, editing it misses) together with a *namespace*: the model and pipeline settings
(:func:`facenet_keras.pipeline.pipeline_id`) plus what was stored (e.g. "the primary face"). Two
models never share entries.

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
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["EmbeddingCache", "cache_root", "file_digest", "primary_namespace", "primary_embeddings"]

_MISSING = object()


def cache_root() -> Path:
    """The package's cache folder: ``$FACENET_KERAS_HOME`` if set, else ``~/.cache/facenet-keras``."""
    from .weights.cache import cache_dir

    return cache_dir()


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


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
            return _MISSING
        except (OSError, ValueError, EOFError):
            # corrupt or foreign entry: drop it and recompute (never crash on a cache)
            try:
                entry.unlink()
            except OSError:
                pass
            return _MISSING
        return value if value.size else None

    def get(self, path: str | os.PathLike | None = None, *, digest: str | None = None):
        """The cached embedding (D,) float32, None for a cached "no face"; KeyError on a miss."""
        digest = digest or file_digest(path)
        value = self._read(digest)
        if value is _MISSING:
            raise KeyError(digest)
        return value

    def __contains__(self, digest: str) -> bool:
        return self._read(digest) is not _MISSING

    # -- write ------------------------------------------------------------------------------
    def put(self, value, path: str | os.PathLike | None = None, *, digest: str | None = None) -> None:
        """Store an embedding (any 1-D float array) or None ("no face found"). Best effort: a
        read-only or full disk only loses the cache entry, never the run."""
        digest = digest or file_digest(path)
        array = np.zeros((0,), np.float32) if value is None else np.asarray(value, np.float32).reshape(-1)
        entry = self._entry(digest)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".npy")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, array, allow_pickle=False)
                os.replace(tmp, entry)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            pass

    def get_or_compute(self, path: str | os.PathLike, compute, *, digest: str | None = None):
        """Cached value for ``path``, or ``compute(path)`` (an embedding or None), stored first."""
        digest = digest or file_digest(path)
        value = self._read(digest)
        if value is not _MISSING:
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


def primary_namespace(pipeline: str) -> str:
    """The cache namespace for "embedding of a photo's main face" under a pipeline id. The package
    version is part of it so that an upgrade (new detector settings, alignment, face choice) never
    reuses embeddings of the old one; bump ``primary-face-vN`` if :func:`primary_face` changes."""
    from . import __version__

    return f"{pipeline}|primary-face-v1|facenet-keras-{__version__}"


def primary_embeddings(paths, *, model=None, cache: "EmbeddingCache | bool" = True, chunk: int = 16,
                       progress: bool | None = None, detector=None):
    """The embedding of the main face of each photo file, through the cache.

    paths: photo files. Returns ``(embeddings, problems)``: a list with one (D,) float32 array per
    path, or None where no face was found or the file could not be read; and a dict path -> reason
    for every None ("no face found" or the image error's message). Misses are computed in chunks of
    ``chunk`` photos with :func:`facenet_keras.pipeline.encode_batch` (their chips encoded
    together) and the main face chosen with :func:`facenet_keras.pipeline.primary_face`.
    ``cache``: True = the default cache for this model, False = none, or an :class:`EmbeddingCache`.
    Unreadable files are not cached (the file may be fixed); "no face" is.
    """
    from tqdm.auto import tqdm

    from .images import ImageError, load_image
    from .pipeline import encode_batch, pipeline_id, primary_face

    paths = [os.fspath(p) for p in paths]
    if cache is True:
        cache = EmbeddingCache(primary_namespace(pipeline_id(model)))
    elif cache is False:
        cache = None
    results: list = [None] * len(paths)
    problems: dict[str, str] = {}
    todo: list[tuple[int, str | None]] = []  # (index, digest) of the misses
    for i, p in enumerate(paths):
        try:
            digest = file_digest(p)
        except OSError as exc:
            problems[p] = f"cannot read file ({exc.strerror or exc})"
            continue
        if cache is not None:
            value = cache._read(digest)
            if value is not _MISSING:
                cache.hits += 1
                results[i] = value
                if value is None:
                    problems[p] = "no face found"
                continue
            cache.misses += 1
        todo.append((i, digest))
    show = progress if progress is not None else len(todo) >= 8
    bar = tqdm(total=len(todo), desc="embedding photos", unit="photo", disable=not show)
    for start in range(0, len(todo), chunk):
        batch = todo[start:start + chunk]
        images, kept = [], []
        for i, digest in batch:
            try:
                images.append(load_image(paths[i]))
                kept.append((i, digest))
            except ImageError as exc:
                problems[paths[i]] = str(exc)
        faces_per_image = encode_batch(images, model=model, detector=detector, progress=False) if images else []
        for (i, digest), image, faces in zip(kept, images, faces_per_image):
            face = primary_face(faces, image.shape)
            value = None if face is None else np.asarray(face.embedding, np.float32).reshape(-1)
            results[i] = value
            if value is None:
                problems[paths[i]] = "no face found"
            if cache is not None:
                cache.put(value, digest=digest)
        bar.update(len(batch))
    bar.close()
    return results, problems
