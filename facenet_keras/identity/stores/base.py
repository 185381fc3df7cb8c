"""The interface every gallery store implements, the records they return, and the rules every
store obeys whatever keeps its bytes (which store a gallery URL names: :mod:`.urls`).

A store keeps people, their enrolled photos' embeddings (with a small face crop and the photo's
sha256 each), and a little metadata (threshold, embedding space), and answers nearest-neighbour
searches. It never runs inference. A store of an older schema says so (``needs_upgrade``) and is
brought to the current one by ``upgrade_schema`` alone, which ``gallery migrate`` calls on every backend.

Backend-independent rules live here, so that every backend applies them the same way:
:func:`normalize_name` (one spelling of a name), :func:`display_name` (names printed escaped),
:func:`check_embeddings`, :func:`check_threshold` and :func:`check_space` (a gallery is bound to one
embedding space), and :class:`GalleryError` (every storage failure, a one-line message).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facenet_keras.identity.search import Match

__all__ = [
    "Photo",
    "GalleryStore",
    "Gallery",
    "GalleryError",
    "EmbeddingSpaceError",
    "check_name",
    "normalize_name",
    "display_name",
    "check_embeddings",
    "check_threshold",
    "check_space",
    "MAX_NAME_LENGTH",
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

    # the schema upgrade ('gallery migrate'): a store of an older schema refuses everything else
    @property
    def needs_upgrade(self) -> bool:
        """Whether this is a gallery of an older schema that only :meth:`upgrade_schema` may touch."""

    @property
    def legacy_model_id(self) -> str | None:
        """The pipeline an older-schema gallery recorded (its embeddings' origin), None once current."""

    def upgrade_schema(self) -> bool:
        """Bring a gallery of an older schema to this one, keeping its embeddings; True if it did."""

    def set_space_id(self, space_id: str) -> None:
        """Record the embedding space of the stored embeddings (after an upgrade kept them)."""

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


class Gallery(Protocol):
    """What the decisions (:mod:`facenet_keras.identity.recognition`) need from a gallery: its store
    and the reads and writes the public :class:`~facenet_keras.identity.gallery.FaceGallery` delegates to
    it. A protocol, so that the decisions need not import the facade that calls them."""

    store: GalleryStore

    @property
    def path(self) -> str | Path: ...

    @property
    def threshold(self) -> float | None: ...

    @property
    def space_id(self) -> str | None: ...

    def add(
        self, name: str, embeddings, *, sources=None, boxes=None, space_id: str | None = None, crops=None, digests=None
    ) -> list[int]: ...

    def names(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, name: str) -> bool: ...

    def people(self) -> dict[str, int]: ...

    def photos(self, name: str | None = None) -> list[Photo]: ...

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]: ...

    def search(self, queries) -> list[Match]: ...


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
        "use the encoder the gallery was built with (--model or --profile), or re-encode the gallery with "
        f"'facenet-keras --gallery {where} gallery migrate' (plus --model or --profile for the new one)"
    )
