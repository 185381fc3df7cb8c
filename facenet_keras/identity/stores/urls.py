"""Which store a gallery URL names: a path or ``sqlite:///path`` (SQLite, the default),
``postgresql://`` (PostgreSQL + pgvector), ``milvus://`` or a local ``*.milvus.db`` (Milvus); each
scheme registers in :data:`SCHEMES`. The backends are imported only when a URL names them."""

from __future__ import annotations

import os
from pathlib import Path

from facenet_keras.identity.stores.base import GalleryStore

__all__ = ["open_store", "default_gallery_path", "SCHEMES"]


def default_gallery_path() -> Path:
    """``$FACENET_KERAS_GALLERY``, else ``$XDG_DATA_HOME/facenet-keras/gallery.sqlite`` (~/.local/share)."""
    env = os.environ.get("FACENET_KERAS_GALLERY")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "facenet-keras" / "gallery.sqlite"


def _open_sqlite(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.stores.sqlite import SQLiteStore

    return SQLiteStore(location, backend=backend, readonly=readonly)


def _open_postgres(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.stores.postgres import PostgresStore

    return PostgresStore("postgresql://" + location, backend=backend, readonly=readonly)


def _open_milvus(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.stores.milvus import MilvusStore

    return MilvusStore("milvus://" + location, backend=backend, readonly=readonly)


def _open_milvus_file(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.stores.milvus import MilvusStore

    return MilvusStore(location, backend=backend, readonly=readonly)


# URL scheme -> opener(location after the scheme, search backend, readonly)
SCHEMES = {"sqlite": _open_sqlite, "postgresql": _open_postgres, "postgres": _open_postgres, "milvus": _open_milvus}


def open_store(url: str | os.PathLike | None = None, *, backend: str = "exact", readonly: bool = False) -> GalleryStore:
    """The store a gallery URL names: a path or ``sqlite:///path`` (default: :func:`default_gallery_path`),
    ``postgresql://user:pass@host:port/db``, ``milvus://host:port[/name]`` or a local ``*.milvus.db``.

    ``readonly``: open for reading only; a gallery that does not exist is an error (nothing is created).
    """
    if url is None:  # the variable may hold a URL, which a Path would mangle ("postgresql:/...")
        url = os.environ.get("FACENET_KERAS_GALLERY") or default_gallery_path()
    text = os.fspath(url)
    scheme, sep, rest = text.partition("://")
    if not sep or len(scheme) < 2:  # a plain path (also C:\\... on Windows)
        if text.split("?")[0].endswith(".milvus.db"):  # a local Milvus (milvus-lite) gallery
            return _open_milvus_file(text, backend, readonly)
        return _open_sqlite(text, backend, readonly)
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown gallery URL scheme {scheme!r} in {text!r}: use a path or one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if scheme == "sqlite":
        rest = rest[1:] if rest.startswith("/") else rest  # sqlite:///abs/path -> /abs/path
    return SCHEMES[scheme](rest, backend, readonly)
