"""The SQLite gallery store: enrolled people and their embeddings in one file (the default backend).

A row is one embedding of one person, remembering the photo it came from. Every write is one SQLite
transaction, so a crash or Ctrl-C mid-write leaves the store exactly as it was. Search is exact (one
matrix product) by default, FAISS on request. The store never runs inference: it stores and
searches embeddings (enrolment, photo -> embedding -> store, is :func:`facenet_keras.identity.recognition.enroll`).

The distance from a query to an identity is the distance to that identity's nearest photo.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from facenet_keras.identity.store import Photo, check_name
from facenet_keras.identity.search import (Match, check_backend, make_index, matches_from_neighbours,
                                           rows_for_runner_up)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT,
    box TEXT,
    embedding BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_person ON photos(person_id);
"""
_SCHEMA_VERSION = "1"


class SQLiteStore:
    """Enrolled people and their face embeddings, stored in SQLite.

    ``path``: the SQLite file; ``":memory:"`` keeps it in memory.
    ``backend`` is the search backend: 'exact' (default), 'faiss' or 'faiss-hnsw'.
    """

    def __init__(self, path: str | os.PathLike, *, backend: str = "exact"):
        self.path = ":memory:" if path == ":memory:" else Path(path).expanduser()
        if self.path != ":memory:":
            if self.path.is_dir():
                raise ValueError(f"gallery path {self.path} is a folder; give a file path")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        check_backend(backend)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None)  # we manage transactions
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.executescript(_SCHEMA)
            version = self._meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path} is not a facenet-keras gallery (SQLite said: {exc})") from exc
        if version is None:
            self._set_meta("schema_version", _SCHEMA_VERSION)
        elif version != _SCHEMA_VERSION:
            raise ValueError(f"{self.path} has gallery schema {version}; this version reads {_SCHEMA_VERSION}")
        self._cache_key = None
        self._cache = None

    # ------------------------------------------------------------------ transactions and metadata
    def _transaction(self):
        return _Transaction(self._db)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str | None) -> None:
        with self._transaction():
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def threshold(self) -> float | None:
        """A calibrated distance threshold stored with the gallery (used by verify/recognize), or None."""
        value = self._meta("threshold")
        return None if value is None else float(value)

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"threshold must be a positive number, got {value!r}")
        self._set_meta("threshold", None if value is None else repr(float(value)))

    @property
    def model_id(self) -> str | None:
        """Which encoder (and pipeline settings) produced the stored embeddings."""
        return self._meta("model_id")

    # ------------------------------------------------------------------ writes
    def add(self, name: str, embeddings, *, sources=None, boxes=None, model_id: str | None = None) -> list[int]:
        """Enrol precomputed ``embeddings`` (N, D) for ``name`` in one transaction; returns the row ids.

        A new name creates the person; an existing one gets more photos.
        """
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
        dim = self._meta("dim")
        if dim is not None and int(dim) != emb.shape[1]:
            raise ValueError(f"this gallery holds {dim}-D embeddings, got {emb.shape[1]}-D")
        stored_model = self.model_id
        if model_id is not None and stored_model is not None and model_id != stored_model:
            raise ValueError(f"this gallery was built with encoder {stored_model!r}, not {model_id!r}; "
                             "use another gallery file for another encoder")
        now = time.time()
        ids = []
        with self._transaction():
            if dim is None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(emb.shape[1]),))
            if model_id is not None and stored_model is None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model_id', ?)", (model_id,))
            self._db.execute("INSERT OR IGNORE INTO people(name, created) VALUES (?, ?)", (name, now))
            (person_id,) = self._db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            for vec, source, box in zip(emb, sources, boxes):
                cur = self._db.execute(
                    "INSERT INTO photos(person_id, source, box, embedding, created) VALUES (?, ?, ?, ?, ?)",
                    (person_id, None if source is None else str(source),
                     None if box is None else json.dumps([float(v) for v in box]), vec.tobytes(), now))
                ids.append(cur.lastrowid)
        return ids

    def rename(self, old: str, new: str) -> None:
        """Rename a person (all their photos follow)."""
        new = check_name(new)
        with self._transaction():
            if new in self.names() and new != old:
                raise ValueError(f"{new!r} is already enrolled")
            cur = self._db.execute("UPDATE people SET name = ? WHERE name = ?", (new, old))
            if cur.rowcount == 0:
                raise KeyError(self._unknown(old))

    def remove(self, name: str) -> int:
        """Remove a person and all their photos; returns how many photos went."""
        with self._transaction():
            row = self._db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(self._unknown(name))
            n = self._db.execute("DELETE FROM photos WHERE person_id = ?", row).rowcount
            self._db.execute("DELETE FROM people WHERE id = ?", row)
        return n

    def remove_photo(self, photo_id: int) -> None:
        """Remove one enrolled photo; a person left with no photo is removed too."""
        with self._transaction():
            row = self._db.execute("SELECT person_id FROM photos WHERE id = ?", (int(photo_id),)).fetchone()
            if row is None:
                raise KeyError(f"no enrolled photo with id {photo_id}")
            self._db.execute("DELETE FROM photos WHERE id = ?", (int(photo_id),))
            self._db.execute("DELETE FROM people WHERE id = ? AND NOT EXISTS "
                             "(SELECT 1 FROM photos WHERE person_id = ?)", (row[0], row[0]))

    # ------------------------------------------------------------------ reads
    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return [r[0] for r in self._db.execute("SELECT name FROM people ORDER BY name")]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM people").fetchone()[0]

    def __contains__(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone() is not None

    def people(self) -> dict[str, int]:
        """Each enrolled name with its number of photos."""
        rows = self._db.execute("SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN photos f "
                                "ON f.person_id = p.id GROUP BY p.id ORDER BY p.name")
        return {name: n for name, n in rows}

    def photos(self, name: str | None = None) -> list[Photo]:
        """The enrolled photos (of one person, or all)."""
        sql = "SELECT f.id, p.name, f.source, f.box FROM photos f JOIN people p ON p.id = f.person_id"
        rows = (self._db.execute(sql + " WHERE p.name = ? ORDER BY f.id", (name,)) if name is not None
                else self._db.execute(sql + " ORDER BY f.id"))
        out = [Photo(i, n, s, None if b is None else tuple(json.loads(b))) for i, n, s, b in rows]
        if name is not None and not out:
            raise KeyError(self._unknown(name))
        return out

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]:
        """All stored embeddings (M, D) float32 and the name of each row (or one person's)."""
        if name is not None:
            if name not in self:
                raise KeyError(self._unknown(name))
            emb, labels = self._matrix()
            keep = [i for i, n in enumerate(labels) if n == name]
            return emb[keep], [name] * len(keep)
        return self._matrix()

    def _matrix(self):
        """(embeddings, labels, index), cached until the database changes (also from another process)."""
        key = (self._db.execute("PRAGMA data_version").fetchone()[0], self._db.total_changes)
        if self._cache_key != key:
            rows = self._db.execute("SELECT p.name, f.embedding FROM photos f JOIN people p "
                                    "ON p.id = f.person_id ORDER BY f.id").fetchall()
            dim = int(self._meta("dim") or 0)
            emb = (np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), dim)
                   if rows else np.zeros((0, dim), np.float32))
            self._cache = (emb, [r[0] for r in rows])
            self._index = None
            self._cache_key = key
        return self._cache

    def search(self, queries) -> list[Match]:
        """For each query embedding (Q, D): the nearest identity, its distance, and the runner-up.

        No thresholding here: deciding "not recognised" is :func:`facenet_keras.recognize`'s job.
        """
        emb, labels = self._matrix()
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if len(emb) == 0:
            return [Match(None, float("inf"), None, float("inf")) for _ in queries]
        if self._index is None:
            self._index = make_index(emb, self.backend)
            self._k = rows_for_runner_up(labels)  # enough rows to always meet a second identity
        dist, idx = self._index.search(queries, self._k)
        return matches_from_neighbours(dist, idx, labels)

    def _unknown(self, name: str) -> str:
        names = self.names()
        listed = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "") if names else "nobody yet"
        return f"{name!r} is not enrolled in {self.path} (enrolled: {listed})"

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, people={len(self)}, backend={self.backend!r})"


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (KeyboardInterrupt included)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
