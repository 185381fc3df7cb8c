"""Small pieces shared by the server-backed gallery stores (PostgreSQL, Milvus): their error type,
URL options, the validation every ``add`` does, and the exact re-rank of ANN candidates."""
from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from facenet_keras.identity.search import Match, matches_from_neighbours, pairwise_distances
from facenet_keras.identity.store import check_name


class GalleryServerError(ValueError):
    """A gallery server cannot be used as asked (unreachable, refused, wrong schema...): one clear line.

    A ValueError, so the command line reports it as bad input (exit 2)."""


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
                raise GalleryServerError(f"gallery URL option {key}={value!r} is not a {type(known[key]).__name__}") from exc
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


def checked_rows(name: str, embeddings, sources, boxes, dim: int | None):
    """The validation every store's ``add`` does: (name, float32 (N, D), sources, boxes)."""
    name = check_name(name)
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim == 1:
        emb = emb[None, :]
    if emb.ndim != 2 or len(emb) == 0:
        raise ValueError(f"embeddings must have shape (N, D) with N >= 1, got {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise ValueError("embeddings contain NaN or inf")
    sources = list(sources) if sources is not None else [None] * len(emb)
    boxes = list(boxes) if boxes is not None else [None] * len(emb)
    if not len(sources) == len(boxes) == len(emb):
        raise ValueError("sources and boxes must have one entry per embedding")
    if dim is not None and int(dim) != emb.shape[1]:
        raise ValueError(f"this gallery holds {dim}-D embeddings, got {emb.shape[1]}-D")
    return name, emb, [None if s is None else str(s) for s in sources], boxes


def check_model(stored: str | None, given: str | None) -> None:
    if given is not None and stored is not None and given != stored:
        raise ValueError(f"this gallery was built with encoder {stored!r}, not {given!r}; "
                         "use another gallery for another encoder")


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
