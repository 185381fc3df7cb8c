"""Small pieces shared by the server-backed gallery stores (PostgreSQL, Milvus): their error type,
URL options, the validation every ``add`` does (the rules of :mod:`facenet_keras.identity.stores.base`),
the embedding-space rule of ``add``, and the exact re-rank of ANN candidates."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from facenet_keras.identity.search import Match, matches_from_neighbours, pairwise_distances
from facenet_keras.identity.stores.base import (
    EmbeddingSpaceError,
    GalleryError,
    check_embeddings,
    check_threshold,
    display_name,
    normalize_name,
)


class GalleryServerError(GalleryError):
    """A gallery server cannot be used as asked (unreachable, refused, wrong schema...): one clear line.

    A :class:`GalleryError` (a ValueError), so the command line reports it as bad input (exit 2)."""


def split_options(url: str, known: dict) -> tuple[str, dict]:
    """Take our own ``?name=value`` options (those in ``known``, with their types' defaults) out of a
    URL; returns the URL the driver sees and the options."""
    parts = urlsplit(url)
    options, rest = dict(known), []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in known:
            try:
                options[key] = type(known[key])(value)
            except ValueError as exc:
                raise GalleryServerError(
                    f"gallery URL option {key}={value!r} is not a {type(known[key]).__name__}"
                ) from exc
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def redact(url: str) -> str:
    """The URL without its password (for messages and repr)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts._replace(query=""))


def checked_rows(name: str, embeddings, sources, boxes, dim: int | None, crops=None, digests=None):
    """The validation every store's ``add`` does: (name, float32 (N, D), sources, boxes, crops, digests),
    the lists with one entry per embedding."""
    name = normalize_name(name)
    emb = check_embeddings(embeddings, dim)
    n = len(emb)
    sources = list(sources) if sources is not None else [None] * n
    boxes = list(boxes) if boxes is not None else [None] * n
    crops = list(crops) if crops is not None else [None] * n
    digests = list(digests) if digests is not None else [None] * n
    if not len(sources) == len(boxes) == len(crops) == len(digests) == n:
        raise ValueError("sources, boxes, crops and digests must have one entry per embedding")
    boxes = [None if b is None else [float(v) for v in b] for b in boxes]
    crops = [None if c is None else bytes(c) for c in crops]
    return name, emb, [None if s is None else str(s) for s in sources], boxes, crops, digests


def check_add_space(where, stored: str | None, given: str | None, empty: bool) -> bool:
    """The embedding-space rule of ``add`` (as SQLite applies it): a gallery holding embeddings of
    one space refuses another; returns whether ``given`` is to be recorded (the gallery had none, or is empty)."""
    if given is not None and stored is not None and given != stored and not empty:
        raise EmbeddingSpaceError(
            f"the gallery {where} holds embeddings of space {stored!r}, not {given!r}; use "
            "another gallery for another encoder, or 'gallery migrate'"
        )
    return given is not None and (stored is None or empty)


def stored_threshold(where, value: str | None) -> float | None:
    """A threshold read back from a gallery's metadata, checked (a damaged value is a GalleryError)."""
    if value is None:
        return None
    try:
        return check_threshold(value)
    except ValueError:
        raise GalleryError(
            f"the gallery {where} is damaged: its meta row 'threshold' holds {value!r}, not a "
            "positive number (store a new one with 'facenet-keras calibrate ... --save')"
        ) from None


def unknown_name(where, name: str, names: list[str]) -> str:
    """The message for a name that is not enrolled, listing (escaped) who is."""
    listed = (
        ", ".join(display_name(n) for n in names[:10]) + (" ..." if len(names) > 10 else "") if names else "nobody yet"
    )
    return f"{display_name(name)} is not enrolled in {where} (enrolled: {listed})"


def embedding_key(vec: np.ndarray) -> str:
    """sha256 of one embedding's float32 bytes: names an enrolled photo when its file hash is unknown."""
    return hashlib.sha256(np.ascontiguousarray(vec, dtype=np.float32).tobytes()).hexdigest()


def rerank(query: np.ndarray, candidates: np.ndarray, labels: list[str]) -> Match:
    """The nearest identity and runner-up among ANN ``candidates`` (C, D) for one ``query`` (D,),
    with distances recomputed by the package's one distance function (so every backend reports the
    same numbers) and the shared runner-up rule."""
    if len(candidates) == 0:
        return matches_from_neighbours(np.full((1, 1), np.inf), np.full((1, 1), -1), [])[0]
    d = pairwise_distances(query[None].astype(np.float32), candidates, dtype=np.float32)[0]
    order = np.argsort(d, kind="stable")
    return matches_from_neighbours(d[order][None], order[None], labels)[0]
