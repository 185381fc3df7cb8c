"""The interface every gallery store implements, the records they return, how a gallery URL picks
a store, and the rules every store obeys whatever keeps its bytes.

A store keeps people, their enrolled photos' embeddings (with a small face crop and the photo's
sha256 each), and a little metadata (threshold, embedding space), and answers nearest-neighbour
searches. It never runs inference. Stores: SQLite (a path or ``sqlite:///path``, the default),
PostgreSQL + pgvector (``postgresql://``), Milvus (``milvus://`` or a local ``*.milvus.db``); each
registers in :data:`SCHEMES`.

Backend-independent rules live here, so that every backend applies them the same way:
:func:`normalize_name` (one spelling of a name), :func:`display_name` (names printed escaped),
:func:`check_embeddings`, :func:`check_threshold` and :func:`check_space` (a gallery is bound to one
embedding space), and :class:`GalleryError` (every storage failure, a one-line message).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facenet_keras.identity.search import Match

__all__ = [
    "Photo",
    "GalleryStore",
    "GalleryError",
    "EmbeddingSpaceError",
    "open_store",
    "default_gallery_path",
    "check_name",
    "normalize_name",
    "display_name",
    "check_embeddings",
    "check_threshold",
    "check_space",
    "MAX_NAME_LENGTH",
    "SCHEMES",
]

MAX_NAME_LENGTH = 200  # characters, after normalisation
# control, format, surrogate and line/paragraph separator characters: never in a name, escaped when printed
_UNPRINTABLE = ("Cc", "Cf", "Cs", "Zl", "Zp")


class GalleryError(ValueError):
    """A gallery cannot be used as asked (missing, locked, read-only, full, foreign, corrupt): the
    message is one line naming the gallery and what to do. The CLI maps it to exit code 2."""


class EmbeddingSpaceError(GalleryError):
    """The gallery's embeddings come from another embedding space than the encoder in use."""


@dataclass(frozen=True)
class Photo:
    """One enrolled embedding: its row id, owner, source (file name or description), face box and
    the sha256 of the photo it came from (None where unknown). ``box`` is ``(x, y, w, h)`` as it was
    enrolled; stores keep what they were given (an imported export may hold another length)."""

    id: int
    name: str
    source: str | None
    box: tuple[float, ...] | None
    sha256: str | None = None


class GalleryStore(Protocol):
    """What :class:`~facenet_keras.identity.gallery.FaceGallery` needs from a storage backend.

    Writes are atomic (all or nothing). ``readonly`` stores never create or modify anything.
    Names reaching a store are already normalised by :func:`normalize_name`; a store calls
    :func:`check_embeddings` / :func:`check_threshold` on what it writes and raises
    :class:`GalleryError` for every storage failure.
    """

    readonly: bool

    @property
    def path(self) -> str | Path:
        """Where the gallery lives, for messages: a file path, ``":memory:"`` or a URL without its password."""

    @property
    def threshold(self) -> float | None: ...

    @threshold.setter
    def threshold(self, value: float | None) -> None: ...

    @property
    def space_id(self) -> str | None:
        """The embedding space of the stored embeddings (None while the gallery is empty)."""

    def add(
        self, name: str, embeddings, *, sources=None, boxes=None, space_id: str | None = None, crops=None, digests=None
    ) -> list[int]: ...

    def replace_embeddings(self, ids, embeddings, space_id: str) -> None:
        """Overwrite the embeddings of rows ``ids`` and the gallery's space in one transaction (migration)."""

    def rename(self, old: str, new: str) -> None: ...

    def remove(self, name: str) -> int: ...

    def remove_photo(self, photo_id: int) -> None: ...

    def names(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, name: str) -> bool: ...

    def people(self) -> dict[str, int]: ...

    def photos(self, name: str | None = None) -> list[Photo]: ...

    def crop(self, photo_id: int) -> bytes | None:
        """The stored face crop (encoded image bytes) of one photo, or None."""

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


def _open_sqlite(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.sqlite_store import SQLiteStore

    return SQLiteStore(location, backend=backend, readonly=readonly)


def _open_postgres(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.postgres_store import PostgresStore

    return PostgresStore("postgresql://" + location, backend=backend, readonly=readonly)


def _open_milvus(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.milvus_store import MilvusStore

    return MilvusStore("milvus://" + location, backend=backend, readonly=readonly)


def _open_milvus_file(location: str, backend: str, readonly: bool = False) -> GalleryStore:
    from facenet_keras.identity.milvus_store import MilvusStore

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


# ---------------------------------------------------------------------------- rules for every backend
def normalize_name(name) -> str:
    """A person's name as stored and compared: stripped, Unicode NFC, at most
    :data:`MAX_NAME_LENGTH` characters, without control or format characters (Unicode Cc, Cf:
    newlines, escape sequences, zero-width joiners), which could forge output lines or hide a
    difference between two names. Raises ValueError naming the problem."""
    if not isinstance(name, str):
        raise ValueError(f"a person's name must be a string, got {type(name).__name__}")
    text = unicodedata.normalize("NFC", name.strip())
    if not text:
        raise ValueError("a person's name must not be empty")
    bad = sorted({c for c in text if unicodedata.category(c) in _UNPRINTABLE})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise ValueError(
            f"a person's name must not contain control or format characters ({shown}): {display_name(text)}"
        )
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(f"a person's name must be at most {MAX_NAME_LENGTH} characters, got {len(text)}")
    return text


check_name = normalize_name  # the 0.2 name


def display_name(name: str) -> str:
    """``name`` quoted for printing, every character that could act on a terminal escaped
    (``'a\\x1b[2Jb'``): names read from a gallery written by other software cannot forge a line."""
    out = []
    for c in str(name):
        if c in "'\\":
            out.append("\\" + c)
        elif unicodedata.category(c) in _UNPRINTABLE:
            out.append(c.encode("unicode_escape").decode("ascii"))
        else:
            out.append(c)
    return "'" + "".join(out) + "'"


def check_embeddings(embeddings, dim: int | None = None) -> np.ndarray:
    """Embeddings to store as (N, D) float32: N >= 1, finite, and D equal to the gallery's ``dim``."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim == 1:
        emb = emb[None, :]
    if emb.ndim != 2 or len(emb) == 0 or emb.shape[1] == 0:
        raise ValueError(f"embeddings must have shape (N, D) with N >= 1, got {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise ValueError("embeddings contain NaN or inf")
    if dim is not None and int(dim) != emb.shape[1]:
        raise ValueError(f"this gallery holds {dim}-D embeddings, got {emb.shape[1]}-D")
    return emb


def check_threshold(value) -> float:
    """A distance threshold: a finite positive number."""
    try:
        tau = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"a threshold must be a positive number, got {value!r}") from None
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"a threshold must be a positive number, got {value!r}")
    return tau


def check_space(stored: str | None, current: str, where, *, empty: bool = False) -> None:
    """Refuse to compare embeddings from two embedding spaces (encoder weights, chip alignment,
    test-time augmentation): distances between them mean nothing, so every answer would be wrong.
    ``stored`` None is accepted only for an ``empty`` gallery."""
    if stored == current or (stored is None and empty):
        return
    if stored is None:
        raise EmbeddingSpaceError(
            f"the gallery {where} holds embeddings of unknown origin (no embedding space "
            "recorded); enrol its people again into a new gallery"
        )
    raise EmbeddingSpaceError(
        f"the gallery {where} holds embeddings of space {stored!r}, but the encoder in use gives {current!r}: "
        "use the encoder the gallery was built with (--model), or re-encode the gallery with "
        f"'facenet-keras --gallery {where} gallery migrate' (plus --model for the new encoder)"
    )
