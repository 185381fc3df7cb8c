"""The interface every gallery store implements, the records they return, and how a gallery URL
picks a store.

A store keeps people, their enrolled photos' embeddings and a little metadata (threshold, encoder
id), and answers nearest-neighbour searches. It never runs inference. Stores: SQLite (a path or
``sqlite:///path``, the default), PostgreSQL + pgvector (``postgresql://``), Milvus (``milvus://``
or a local ``*.milvus.db``); each registers in :data:`SCHEMES`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facenet_keras.identity.search import Match

__all__ = ["Photo", "GalleryStore", "open_store", "default_gallery_path", "check_name", "SCHEMES"]


@dataclass(frozen=True)
class Photo:
    """One enrolled embedding: its row id, owner, source (file name or description) and face box."""

    id: int
    name: str
    source: str | None
    box: tuple[float, float, float, float] | None


class GalleryStore(Protocol):
    """What :class:`~facenet_keras.identity.gallery.FaceGallery` needs from a storage backend."""

    path: object
    threshold: float | None

    @property
    def model_id(self) -> str | None: ...

    def add(self, name: str, embeddings, *, sources=None, boxes=None, model_id: str | None = None) -> list[int]: ...

    def rename(self, old: str, new: str) -> None: ...

    def remove(self, name: str) -> int: ...

    def remove_photo(self, photo_id: int) -> None: ...

    def names(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, name: str) -> bool: ...

    def people(self) -> dict[str, int]: ...

    def photos(self, name: str | None = None) -> list[Photo]: ...

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]: ...

    def search(self, queries) -> list[Match]: ...

    def close(self) -> None: ...


def default_gallery_path() -> Path:
    """``$FACENET_KERAS_GALLERY``, else ``$XDG_DATA_HOME/facenet-keras/gallery.sqlite`` (~/.local/share)."""
    env = os.environ.get("FACENET_KERAS_GALLERY")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "facenet-keras" / "gallery.sqlite"


def _open_sqlite(location: str, backend: str) -> GalleryStore:
    from facenet_keras.identity.sqlite_store import SQLiteStore

    return SQLiteStore(location, backend=backend)


def _open_postgres(location: str, backend: str) -> GalleryStore:
    from facenet_keras.identity.postgres_store import PostgresStore

    return PostgresStore("postgresql://" + location, backend=backend)


def _open_milvus(location: str, backend: str) -> GalleryStore:
    from facenet_keras.identity.milvus_store import MilvusStore

    return MilvusStore("milvus://" + location, backend=backend)


def _open_milvus_file(location: str, backend: str) -> GalleryStore:
    from facenet_keras.identity.milvus_store import MilvusStore

    return MilvusStore(location, backend=backend)


# URL scheme -> opener(location after the scheme, search backend)
SCHEMES = {"sqlite": _open_sqlite, "postgresql": _open_postgres, "postgres": _open_postgres,
           "milvus": _open_milvus}


def open_store(url: str | os.PathLike | None = None, *, backend: str = "exact") -> GalleryStore:
    """The store a gallery URL names: a path or ``sqlite:///path`` (default: :func:`default_gallery_path`),
    ``postgresql://user:pass@host:port/db``, ``milvus://host:port[/name]`` or a local ``*.milvus.db``."""
    if url is None:  # the variable may hold a URL, which a Path would mangle ("postgresql:/...")
        url = os.environ.get("FACENET_KERAS_GALLERY") or default_gallery_path()
    text = os.fspath(url)
    scheme, sep, rest = text.partition("://")
    if not sep or len(scheme) < 2:  # a plain path (also C:\\... on Windows)
        if text.split("?")[0].endswith(".milvus.db"):  # a local Milvus (milvus-lite) gallery
            return _open_milvus_file(text, backend)
        return _open_sqlite(text, backend)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown gallery URL scheme {scheme!r} in {text!r}: use a path or one of "
                         + ", ".join(f"{s}://" for s in SCHEMES))
    if scheme == "sqlite":
        rest = rest[1:] if rest.startswith("/") else rest  # sqlite:///abs/path -> /abs/path
    return SCHEMES[scheme](rest, backend)


def check_name(name) -> str:
    """A person's name as stored: a non-empty string, stripped."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a person's name must be a non-empty string, got {name!r}")
    return name.strip()
