"""Where a photo library's face index lives: the interface, its records, and the SQLite store.

The index has three kinds of rows: *contents* (a photo's bytes, by sha256: indexed once, whatever
its name; a bad file is a content with an error), *paths* (where such bytes are on disk now, with
size and mtime so an unchanged file is not hashed again) and *faces* (every face of a content: box,
landmarks, quality, embedding; the cluster it was put in, the person it was named or recognised as).
Every write that adds a photo is one transaction (content, faces and path together), so a kill at
any moment leaves whole photos or none, and the next run redoes only what is missing.

It is kept apart from the gallery of named people (:class:`facenet_keras.identity.gallery.FaceGallery`,
any backend), which the library uses only through its public methods. Another backend implements
:class:`LibraryStore` with the same three tables: PostgreSQL with the embedding as a pgvector
column (``ORDER BY embedding <-> q`` for :meth:`LibraryStore.faces` near a query), Milvus as a
collection of faces with the photo sha, path, cluster and person as scalar fields and a side table
of paths. Clustering reads :meth:`LibraryStore.embeddings` and writes :meth:`LibraryStore.set_clusters`
and so needs nothing backend-specific.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from facenet_keras.files import PRIVATE_FILE_MODE

__all__ = ["FaceRecord", "PathInfo", "LibraryStore", "SQLiteLibrary", "open_library", "library_path_for"]


@dataclass(frozen=True)
class FaceRecord:
    """One indexed face. ``box`` (x, y, w, h) and ``landmarks`` (5, 2) in pixels of the photo;
    ``size`` the box's shorter side in px; ``sharpness`` the variance of the Laplacian of the aligned
    grey chip; ``yaw``/``pitch`` the nose's offset from the eye-mouth centre line in eye distances
    (0 = frontal), ``roll`` the eye line's angle in degrees; ``cluster`` None when not in a group;
    ``person`` the name it was given or recognised as, ``distance`` to that person's gallery entry;
    ``gated`` why the quality gate turned the face away ("too small", "not a face?", "low quality"):
    such a face has no embedding and is never recognised, clustered or named."""

    id: int
    sha: str
    path: str | None
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    confidence: float
    size: float
    sharpness: float
    yaw: float
    pitch: float
    roll: float
    cluster: int | None = None
    person: str | None = None
    distance: float | None = None
    gated: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "photo": self.path,
            "box": [round(float(v), 1) for v in self.box],
            "cluster": self.cluster,
            "person": self.person,
            "distance": None if self.distance is None else round(float(self.distance), 4),
            "gated": self.gated,
            "quality": {
                "size": round(self.size, 1),
                "sharpness": round(self.sharpness, 1),
                "yaw": round(self.yaw, 3),
                "pitch": round(self.pitch, 3),
                "roll": round(self.roll, 1),
            },
        }


@dataclass(frozen=True)
class PathInfo:
    """A file as last indexed: its content's sha256, size in bytes and mtime in ns."""

    sha: str
    size: int
    mtime_ns: int


class LibraryStore(Protocol):
    """What the library needs from a face-index backend."""

    path: object

    def meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str | None) -> None: ...

    def path_info(self, path: str) -> PathInfo | None: ...

    def has_content(self, sha: str) -> bool: ...

    def set_path(self, path: str, info: PathInfo) -> None: ...

    def add_photo(
        self,
        path: str,
        info: PathInfo,
        faces: Sequence[dict],
        *,
        error: str | None = None,
        shape: tuple[int, int] | None = None,
    ) -> list[int]: ...

    def paths(self, under: str | None = None) -> list[str]: ...

    def remove_paths(self, paths: Iterable[str]) -> int: ...

    def prune(self) -> tuple[int, int]: ...

    def errors(self) -> dict[str, str]: ...

    def faces(
        self,
        *,
        ids: Sequence[int] | None = None,
        cluster: int | None = None,
        person: str | None = None,
        unnamed: bool = False,
        embeddings: bool = False,
    ) -> list[FaceRecord]: ...

    def embeddings(
        self, ids: Sequence[int] | None = None, *, unnamed: bool = False
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def set_clusters(
        self, ids: Sequence[int], clusters: Sequence[int | None], *, replace_all: bool = False
    ) -> None: ...

    def set_person(self, ids: Sequence[int], person: str | None, distances: Sequence[float | None]) -> None: ...

    def rename_person(self, old: str, new: str) -> int: ...

    def counts(self) -> dict: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contents (
    sha TEXT PRIMARY KEY,
    width INTEGER, height INTEGER,
    error TEXT,
    indexed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS paths (
    path TEXT PRIMARY KEY,
    sha TEXT NOT NULL REFERENCES contents(sha) ON DELETE CASCADE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS paths_sha ON paths(sha);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    sha TEXT NOT NULL REFERENCES contents(sha) ON DELETE CASCADE,
    box TEXT NOT NULL, landmarks TEXT NOT NULL, confidence REAL NOT NULL,
    size REAL NOT NULL, sharpness REAL NOT NULL, yaw REAL NOT NULL, pitch REAL NOT NULL, roll REAL NOT NULL,
    embedding BLOB NOT NULL,
    cluster INTEGER, person TEXT, distance REAL,
    gated TEXT
);
CREATE INDEX IF NOT EXISTS faces_sha ON faces(sha);
CREATE INDEX IF NOT EXISTS faces_person ON faces(person);
CREATE INDEX IF NOT EXISTS faces_cluster ON faces(cluster);
"""
# 2: faces.gated (the quality gate's reason). A schema-1 file gets the column on opening; its faces,
# indexed before the gate existed, count as usable until their photos are indexed again.
_SCHEMA_VERSION = "2"
_FACE_COLUMNS = (
    "f.id, f.sha, (SELECT MIN(p.path) FROM paths p WHERE p.sha = f.sha), f.box, f.landmarks, "
    "f.confidence, f.size, f.sharpness, f.yaw, f.pitch, f.roll, f.cluster, f.person, f.distance, f.gated"
)


def library_path_for(gallery_url) -> Path:
    """Where the face index of a gallery lives by default: beside a file gallery
    (``people.sqlite`` -> ``people.library.sqlite``), else in the user data folder."""
    from facenet_keras.identity.stores.urls import default_gallery_path

    text = os.fspath(gallery_url) if gallery_url is not None else os.fspath(default_gallery_path())
    scheme, sep, rest = text.partition("://")
    if sep and len(scheme) >= 2:
        if scheme != "sqlite":
            return default_gallery_path().with_name("library.sqlite")
        text = rest[1:] if rest.startswith("/") else rest
    if text == ":memory:":
        raise ValueError("an in-memory gallery has no place for a library index: give --library PATH")
    p = Path(text).expanduser()
    return p.with_name(p.stem + ".library.sqlite")


def open_library(path: str | os.PathLike) -> SQLiteLibrary:
    """The face index at ``path`` (created if missing)."""
    return SQLiteLibrary(path)


class SQLiteLibrary:
    """The face index in one SQLite file (0600), WAL journal so readers never wait for the indexer."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise ValueError(f"library path {self.path} is a folder; give a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
            if fresh:
                os.chmod(self.path, PRIVATE_FILE_MODE)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            version = self._existing_version()
            if version == "1":
                self._db.execute("ALTER TABLE faces ADD COLUMN gated TEXT")
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (_SCHEMA_VERSION,))
                version = _SCHEMA_VERSION
            self._db.executescript(_SCHEMA)
            version = self.meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path} is not a facenet-keras library index (SQLite said: {exc})") from exc
        if version is None:
            self.set_meta("schema_version", _SCHEMA_VERSION)
        elif version != _SCHEMA_VERSION:
            raise ValueError(f"{self.path} has library schema {version}; this version reads {_SCHEMA_VERSION}")

    def _existing_version(self) -> str | None:
        """The schema version of an existing file (None for a new one)."""
        has_meta = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if not has_meta:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ metadata
    def _tx(self):
        return _Transaction(self._db)

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self._tx():
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ files
    def path_info(self, path: str) -> PathInfo | None:
        row = self._db.execute("SELECT sha, size, mtime_ns FROM paths WHERE path = ?", (path,)).fetchone()
        return None if row is None else PathInfo(*row)

    def has_content(self, sha: str) -> bool:
        return self._db.execute("SELECT 1 FROM contents WHERE sha = ?", (sha,)).fetchone() is not None

    def set_path(self, path: str, info: PathInfo) -> None:
        """Point ``path`` at already indexed bytes (a moved, renamed, copied or touched file)."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO paths(path, sha, size, mtime_ns) VALUES (?, ?, ?, ?)",
                (path, info.sha, info.size, info.mtime_ns),
            )

    def add_photo(
        self,
        path: str,
        info: PathInfo,
        faces: Sequence[dict],
        *,
        error: str | None = None,
        shape: tuple[int, int] | None = None,
    ) -> list[int]:
        """One photo in one transaction: its content (or its error), every face, and its path.
        ``faces``: dicts with box, landmarks, confidence, size, sharpness, yaw, pitch, roll,
        embedding (D,) float32 (None for a gated face), and optionally person, distance and gated
        (the gate's reason). Bytes already indexed add no face again (returns [])."""
        ids = []
        with self._tx():
            if self._db.execute("SELECT 1 FROM contents WHERE sha = ?", (info.sha,)).fetchone() is None:
                h, w = shape if shape is not None else (None, None)
                self._db.execute(
                    "INSERT INTO contents(sha, width, height, error, indexed) VALUES (?, ?, ?, ?, ?)",
                    (info.sha, w, h, error, time.time()),
                )
                for f in faces:
                    gated = f.get("gated")
                    if (gated is None) == (f.get("embedding") is None):
                        raise ValueError("a face is either usable with an embedding, or gated without one")
                    emb = np.zeros(0, np.float32) if gated else np.asarray(f["embedding"], np.float32).reshape(-1)
                    if gated and f.get("person") is not None:
                        raise ValueError(f"a face the quality gate turned away ({gated}) is never named")
                    cur = self._db.execute(
                        "INSERT INTO faces(sha, box, landmarks, confidence, size, sharpness, yaw, pitch, roll, "
                        "embedding, person, distance, gated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            info.sha,
                            json.dumps([float(v) for v in f["box"]]),
                            json.dumps(np.asarray(f["landmarks"], float).round(2).tolist()),
                            float(f["confidence"]),
                            float(f["size"]),
                            float(f["sharpness"]),
                            float(f["yaw"]),
                            float(f["pitch"]),
                            float(f["roll"]),
                            emb.tobytes(),
                            f.get("person"),
                            f.get("distance"),
                            gated,
                        ),
                    )
                    ids.append(cur.lastrowid)
            self._db.execute(
                "INSERT OR REPLACE INTO paths(path, sha, size, mtime_ns) VALUES (?, ?, ?, ?)",
                (path, info.sha, info.size, info.mtime_ns),
            )
        return ids

    def paths(self, under: str | None = None) -> list[str]:
        """Known file paths (under a folder, when given), sorted."""
        if under is None:
            return [r[0] for r in self._db.execute("SELECT path FROM paths ORDER BY path")]
        prefix = under.rstrip(os.sep) + os.sep
        rows = self._db.execute(
            "SELECT path FROM paths WHERE substr(path, 1, ?) = ? ORDER BY path", (len(prefix), prefix)
        )
        return [r[0] for r in rows]

    def remove_paths(self, paths: Iterable[str]) -> int:
        with self._tx():
            return sum(self._db.execute("DELETE FROM paths WHERE path = ?", (p,)).rowcount for p in paths)

    def prune(self) -> tuple[int, int]:
        """Drop contents no path points at any more, with their faces: (photos, faces) removed."""
        with self._tx():
            orphan = "SELECT sha FROM contents WHERE sha NOT IN (SELECT sha FROM paths)"
            n_faces = self._db.execute(f"DELETE FROM faces WHERE sha IN ({orphan})").rowcount
            n_photos = self._db.execute(f"DELETE FROM contents WHERE sha IN ({orphan})").rowcount
        return n_photos, n_faces

    def errors(self) -> dict[str, str]:
        """Path -> reason for every known file that could not be indexed."""
        rows = self._db.execute(
            "SELECT p.path, c.error FROM paths p JOIN contents c ON c.sha = p.sha "
            "WHERE c.error IS NOT NULL ORDER BY p.path"
        )
        return dict(rows.fetchall())

    # ------------------------------------------------------------------ faces
    def faces(
        self,
        *,
        ids: Sequence[int] | None = None,
        cluster: int | None = None,
        person: str | None = None,
        unnamed: bool = False,
        embeddings: bool = False,
    ) -> list[FaceRecord]:
        """Faces, in id order, filtered by ids, cluster, person, or ``unnamed`` (no person). With
        ``embeddings`` only usable faces come back (a gated face has no embedding)."""
        where, args = [], []
        if ids is not None:
            ids = [int(i) for i in ids]
            if not ids:
                return []
            where.append(f"f.id IN ({','.join('?' * len(ids))})")
            args += ids
        if cluster is not None:
            where.append("f.cluster = ?")
            args.append(int(cluster))
        if person is not None:
            where.append("f.person = ?")
            args.append(person)
        if unnamed:
            where.append("f.person IS NULL")
        if embeddings:
            where.append("f.gated IS NULL")
        cols = _FACE_COLUMNS + (", f.embedding" if embeddings else "")
        sql = f"SELECT {cols} FROM faces f" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY f.id"
        out = []
        for r in self._db.execute(sql, args):
            emb = np.frombuffer(r[15], np.float32).copy() if embeddings else None
            out.append(
                FaceRecord(
                    r[0],
                    r[1],
                    r[2],
                    tuple(json.loads(r[3])),
                    tuple(map(tuple, json.loads(r[4]))),
                    r[5],
                    r[6],
                    r[7],
                    r[8],
                    r[9],
                    r[10],
                    r[11],
                    r[12],
                    r[13],
                    r[14],
                    emb,
                )
            )
        return out

    def embeddings(self, ids: Sequence[int] | None = None, *, unnamed: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(face ids (N,) int64, embeddings (N, D) float32), of the given usable faces or all usable
        ones (or the unnamed usable ones): gated faces never take part in clustering or search."""
        recs = self.faces(ids=ids, unnamed=unnamed, embeddings=True)
        if not recs:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array([r.id for r in recs], np.int64), np.stack([r.embedding for r in recs])

    def set_clusters(self, ids: Sequence[int], clusters: Sequence[int | None], *, replace_all: bool = False) -> None:
        """Put faces in clusters (None: in none); ``replace_all`` first clears every cluster."""
        with self._tx():
            if replace_all:
                self._db.execute("UPDATE faces SET cluster = NULL")
            self._db.executemany(
                "UPDATE faces SET cluster = ? WHERE id = ?",
                [(None if c is None else int(c), int(i)) for i, c in zip(ids, clusters)],
            )

    def set_person(self, ids: Sequence[int], person: str | None, distances: Sequence[float | None]) -> None:
        """Name faces (their cluster is cleared: a named face belongs to a person, not a group). A face
        the quality gate turned away is never named (ValueError)."""
        with self._tx():
            if person is not None and ids:
                marks = ",".join("?" * len(ids))
                gated = self._db.execute(
                    f"SELECT id, gated FROM faces WHERE gated IS NOT NULL AND id IN ({marks})", [int(i) for i in ids]
                ).fetchall()
                if gated:
                    raise ValueError(f"face {gated[0][0]} is not usable ({gated[0][1]}): it cannot be named")
            self._db.executemany(
                "UPDATE faces SET person = ?, distance = ?, cluster = NULL WHERE id = ?",
                [(person, None if d is None else float(d), int(i)) for i, d in zip(ids, distances)],
            )

    def rename_person(self, old: str, new: str) -> int:
        with self._tx():
            return self._db.execute("UPDATE faces SET person = ? WHERE person = ?", (new, old)).rowcount

    def counts(self) -> dict:
        q = lambda sql: self._db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "photos": q("SELECT COUNT(*) FROM paths"),
            "contents": q("SELECT COUNT(*) FROM contents"),
            "failed": q("SELECT COUNT(*) FROM contents WHERE error IS NOT NULL"),
            "faces": q("SELECT COUNT(*) FROM faces"),
            "gated_faces": q("SELECT COUNT(*) FROM faces WHERE gated IS NOT NULL"),
            "named_faces": q("SELECT COUNT(*) FROM faces WHERE person IS NOT NULL"),
            "clustered_faces": q("SELECT COUNT(*) FROM faces WHERE cluster IS NOT NULL"),
            "clusters": q("SELECT COUNT(DISTINCT cluster) FROM faces WHERE cluster IS NOT NULL"),
        }

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteLibrary({str(self.path)!r})"


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
