"""The SQLite gallery store: enrolled people, their embeddings and face crops in one private file.

A row is one embedding of one person, remembering the photo it came from (source, face box, the
photo's sha256) and a small face crop with margin (so the gallery can be re-encoded by ``gallery
migrate`` without the original photos). Every write is one SQLite transaction, so a crash or Ctrl-C
mid-write leaves the store exactly as it was. Search is exact (one matrix product) by default,
FAISS on request. The store never runs inference.

Privacy and safety: a new gallery file is created 0600 in a folder created 0700 (SQLite gives its
journal the file's mode), and only at the first write, so a failed enrolment or a read leaves no
file behind. Deleted rows are overwritten (``secure_delete``), so a removed person's embeddings and
crops do not linger in free pages. ``readonly=True`` opens with SQLite's read-only mode and never
creates or changes anything. A database that is not a gallery is refused untouched. Every SQLite
or OS failure becomes a one-line :class:`~facenet_keras.identity.stores.base.GalleryError`.

The distance from a query to an identity is the distance to that identity's nearest photo.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facenet_keras.files import PRIVATE_FILE_MODE, private_dir
from facenet_keras.identity.search import (
    ExactIndex,
    FaissIndex,
    Match,
    check_backend,
    make_index,
    matches_from_neighbours,
    rows_for_runner_up,
)
from facenet_keras.identity.stores.base import (
    EmbeddingSpaceError,
    GalleryError,
    Photo,
    check_embeddings,
    check_threshold,
    display_name,
    normalize_name,
)

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
    created REAL NOT NULL,
    crop BLOB,
    sha256 TEXT
);
CREATE INDEX IF NOT EXISTS photos_person ON photos(person_id);
"""
SCHEMA_VERSION = "2"
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's transaction before giving up


class SQLiteStore:
    """Enrolled people and their face embeddings, stored in SQLite.

    ``path``: the SQLite file; ``":memory:"`` keeps it in memory. ``backend``: the search backend,
    'exact' (default), 'faiss' or 'faiss-hnsw'. ``readonly``: open an existing gallery for reading
    only (a missing file is an error). A gallery of schema 1 (facenet-keras 0.1/0.2) opens only
    for :meth:`upgrade_schema` (``facenet-keras gallery migrate``).
    """

    def __init__(self, path: str | os.PathLike, *, backend: str = "exact", readonly: bool = False):
        check_backend(backend)
        self.backend = backend
        self.readonly = bool(readonly)
        self._file: Path | None = None if str(path) == ":memory:" else Path(path).expanduser()  # None: in memory
        self.path: str | Path = ":memory:" if self._file is None else self._file
        self._db: sqlite3.Connection | None = None
        self._cache_key: tuple[int, int] | None = None
        self._cache: tuple[np.ndarray, list[str]] | None = None
        self._index: ExactIndex | FaissIndex | None = None
        self._k = 0
        self.schema_version = SCHEMA_VERSION
        file = self._file
        if file is None:
            if self.readonly:
                raise GalleryError("an in-memory gallery cannot be opened read-only")
            self._create(memory=True)
            return
        if file.is_dir():
            raise GalleryError(f"the gallery path {self.path} is a folder; give a file path")
        if not file.exists():
            if self.readonly:
                raise GalleryError(
                    f"no gallery at {self.path} (check --gallery; enrol someone first with "
                    "'facenet-keras enroll NAME PHOTO')"
                )
            return  # created at the first write
        self._open_existing()

    # ------------------------------------------------------------------ opening
    def _open_existing(self) -> bool:
        """Connect to the gallery file if it exists (another process may have created it since)."""
        if self._db is not None:
            return True
        file = self._file
        if file is None or not file.exists():
            return False
        with self._errors("open"):
            uri = f"file:{urllib.parse.quote(str(file.resolve()))}?mode={'ro' if self.readonly else 'rw'}"
            db = self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            try:
                self._configure()
                self._check_existing()
            except BaseException:
                db.close()
                self._db = None
                raise
        return True

    def _connection(self) -> sqlite3.Connection:
        """The open connection: every caller has opened it first (``_open_existing`` or ``_create``)."""
        if self._db is None:
            raise GalleryError(f"the gallery {self.path} is not open (it was closed)")
        return self._db

    def _configure(self) -> None:
        db = self._connection()
        db.execute("PRAGMA foreign_keys = ON")
        if not self.readonly:
            db.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not left in free pages

    def _check_existing(self) -> None:
        """Accept a gallery (or an empty SQLite file, when writable); refuse anything else untouched."""
        tables = {r[0] for r in self._connection().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            if self.readonly:
                raise GalleryError(f"{self.path} is an empty database, not a gallery (enrol someone first)")
            with self._transaction() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            return
        if "meta" not in tables or not {"people", "photos"} <= tables:
            listed = ", ".join(sorted(tables)[:5])
            raise GalleryError(
                f"{self.path} is an SQLite database but not a facenet-keras gallery "
                f"(its tables: {listed}); it was left untouched"
            )
        version = self._meta("schema_version")
        if version == "1":
            self.schema_version = "1"
        elif version != SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path} has gallery schema {version!r}; this facenet-keras reads schema "
                f"{SCHEMA_VERSION} (and upgrades 1): upgrade facenet-keras"
            )

    def _create(self, memory: bool = False) -> bool:
        """Create the database file 0600 (folder 0700) with the schema; True if this call created it."""
        if self._db is not None or (not memory and self._open_existing()):
            return False
        created = False
        if not memory:
            file = self._file
            if file is None:  # an in-memory gallery after close(): its contents are gone
                raise GalleryError("the in-memory gallery was closed; open a new one")
            private_dir(file.parent)
            try:
                fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
                os.close(fd)
                created = True
            except FileExistsError:  # another process created it meanwhile: open theirs
                pass
        try:
            target = ":memory:" if memory else str(self.path)
            self._db = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            self._configure()
            self._check_existing()
        except BaseException:
            if created:
                self._discard_file()
            raise
        return created

    def _discard_file(self) -> None:
        """Remove a gallery file this store created and never committed a person to."""
        if self._db is not None:
            self._db.close()
            self._db = None
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")

    def _require_current(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path} is a gallery of schema {self.schema_version} (an older facenet-keras); "
                f"upgrade it with 'facenet-keras --gallery {self.path} gallery migrate'"
            )

    # ------------------------------------------------------------------ errors and transactions
    @contextlib.contextmanager
    def _errors(self, action: str):
        """Turn SQLite and OS failures into one-line GalleryErrors naming the gallery."""
        try:
            yield
        except sqlite3.Error as exc:
            raise GalleryError(self._describe(exc, action)) from exc
        except OSError as exc:
            raise GalleryError(f"cannot {action} the gallery {self.path}: {exc.strerror or exc}") from exc

    def _describe(self, exc: sqlite3.Error, action: str) -> str:
        text = str(exc).lower()
        where = f"the gallery {self.path}"
        if "locked" in text or "busy" in text:
            return f"{where} is locked by another process (waited {BUSY_TIMEOUT_S:g} s); try again when it has finished"
        if "readonly" in text or "read-only" in text:
            return f"{where} is read-only (the file or its file system): cannot {action} it"
        if "disk is full" in text or "disk full" in text:
            return f"no space left on the disk of {where}: cannot {action} it (nothing was changed)"
        if "unable to open" in text:
            return f"cannot open {where} (permission denied, or its folder is missing or read-only)"
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return f"{self.path} is not a facenet-keras gallery or it is damaged (SQLite: {exc})"
        if "i/o" in text:
            return f"a disk error (I/O) while trying to {action} {where} (SQLite: {exc})"
        return f"cannot {action} {where} (SQLite: {exc})"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK (only when a transaction is active) on any exception."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write: refused read-only; creates the file at the first write and removes it again
        if that write fails; one transaction; SQLite/OS errors as GalleryError."""
        if self.readonly:
            raise GalleryError(f"the gallery {self.path} was opened read-only: cannot {action} it")
        created = False
        try:
            with self._errors(action):
                created = self._create()
                self._require_current()
                with self._transaction() as db:
                    yield db
        except BaseException:
            if created:
                self._discard_file()
            raise

    def _read(self, sql: str, params=()) -> list:
        """Rows of a query; an empty list for a gallery not created yet."""
        if not self._open_existing():
            return []
        self._require_current()
        with self._errors("read"):
            return self._connection().execute(sql, params).fetchall()

    def _meta(self, key: str) -> str | None:
        if not self._open_existing():
            return None
        with self._errors("read"):
            row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str | None) -> None:
        with self._write(f"store {key} in") as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ metadata
    @property
    def threshold(self) -> float | None:
        """A calibrated distance threshold stored with the gallery (used by verify/recognize), or None."""
        value = self._meta("threshold")
        if value is None:
            return None
        try:
            return check_threshold(value)
        except ValueError:
            raise GalleryError(  # noqa: B904 (the one-line message says all; the ValueError adds nothing)
                f"the gallery {self.path} is damaged: its meta row 'threshold' holds {value!r}, "
                "not a positive number (store a new one with 'facenet-keras calibrate ... --save')"
            )

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._set_meta("threshold", None if value is None else repr(check_threshold(value)))

    @property
    def space_id(self) -> str | None:
        """The embedding space of the stored embeddings (encoder weights, alignment, augmentation)."""
        return self._meta("space_id")

    @property
    def legacy_model_id(self) -> str | None:
        """What a schema-1 gallery recorded as its 'model_id' (the 0.2 pipeline id), else None."""
        return self._meta("model_id")

    def _dim(self) -> int | None:
        value = self._meta("dim")
        if value is None:
            return None
        if not value.isdigit() or int(value) == 0:
            raise GalleryError(f"the gallery {self.path} is damaged: its meta row 'dim' holds {value!r}")
        return int(value)

    @property
    def needs_upgrade(self) -> bool:
        """Whether this is a gallery of an older schema that only ``upgrade_schema`` may touch."""
        return self.schema_version != SCHEMA_VERSION

    def upgrade_schema(self) -> bool:
        """Bring a schema-1 gallery to schema 2 (adds the crop and sha256 columns); True if it did."""
        if self.schema_version == SCHEMA_VERSION:
            return False
        if self.readonly:
            raise GalleryError(f"the gallery {self.path} was opened read-only: cannot upgrade it")
        with self._errors("upgrade"), self._transaction() as db:
            db.execute("ALTER TABLE photos ADD COLUMN crop BLOB")
            db.execute("ALTER TABLE photos ADD COLUMN sha256 TEXT")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        self.schema_version = SCHEMA_VERSION
        return True

    # ------------------------------------------------------------------ writes
    def add(
        self, name: str, embeddings, *, sources=None, boxes=None, space_id: str | None = None, crops=None, digests=None
    ) -> list[int]:
        """Enrol precomputed ``embeddings`` (N, D) for ``name`` in one transaction; returns the row ids.

        A new name creates the person; an existing one gets more photos. ``crops``: encoded face
        crops (bytes) and ``digests``: the photos' sha256, one per embedding (or None).
        """
        name = normalize_name(name)
        emb = check_embeddings(embeddings)
        n = len(emb)
        sources = list(sources) if sources is not None else [None] * n
        boxes = list(boxes) if boxes is not None else [None] * n
        crops = list(crops) if crops is not None else [None] * n
        digests = list(digests) if digests is not None else [None] * n
        if not len(sources) == len(boxes) == len(crops) == len(digests) == n:
            raise ValueError("sources, boxes, crops and digests must have one entry per embedding")
        now = time.time()
        ids: list[int] = []
        with self._write("enrol into") as db:
            check_embeddings(emb, self._dim())
            stored = self.space_id
            empty = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0] == 0
            if space_id is not None and stored is not None and space_id != stored and not empty:
                raise EmbeddingSpaceError(
                    f"the gallery {self.path} holds embeddings of space {stored!r}, not "
                    f"{space_id!r}; use another gallery file for another encoder, or "
                    "'gallery migrate'"
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(emb.shape[1]),))
            if space_id is not None and (stored is None or empty):
                db.execute("INSERT OR REPLACE INTO meta VALUES ('space_id', ?)", (space_id,))
            db.execute("INSERT OR IGNORE INTO people(name, created) VALUES (?, ?)", (name, now))
            (person_id,) = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            for vec, source, box, crop, digest in zip(emb, sources, boxes, crops, digests):
                cur = db.execute(
                    "INSERT INTO photos(person_id, source, box, embedding, created, crop, sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        person_id,
                        None if source is None else str(source),
                        None if box is None else json.dumps([float(v) for v in box]),
                        vec.tobytes(),
                        now,
                        None if crop is None else bytes(crop),
                        digest,
                    ),
                )
                if cur.lastrowid is None:  # sqlite3 always sets it after an INSERT into a rowid table
                    raise GalleryError(f"the gallery {self.path} did not report the new photo's row id")
                ids.append(cur.lastrowid)
        return ids

    def replace_embeddings(self, ids, embeddings, space_id: str) -> None:
        """Overwrite the embeddings of rows ``ids`` and record ``space_id``, in one transaction; the
        calibrated threshold, which belonged to the old space, is dropped."""
        emb = check_embeddings(embeddings)
        ids = [int(i) for i in ids]
        if len(ids) != len(emb):
            raise ValueError("one embedding per row id")
        with self._write("re-encode") as db:
            if len(ids) != db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]:
                raise GalleryError(f"the gallery {self.path} changed during the migration; run it again")
            for i, vec in zip(ids, emb):
                db.execute("UPDATE photos SET embedding = ? WHERE id = ?", (vec.tobytes(), i))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(emb.shape[1]),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('space_id', ?)", (space_id,))
            db.execute("DELETE FROM meta WHERE key IN ('model_id', 'threshold')")  # calibrated for the old space

    def set_space_id(self, space_id: str) -> None:
        """Record the embedding space of embeddings already stored (a schema upgrade that keeps them)."""
        with self._write("record the embedding space of") as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('space_id', ?)", (space_id,))
            db.execute("DELETE FROM meta WHERE key = 'model_id'")

    def rename(self, old: str, new: str) -> None:
        """Rename a person (all their photos follow)."""
        old, new = normalize_name(old), normalize_name(new)
        with self._write("rename a person in") as db:
            if new != old and db.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise ValueError(f"{display_name(new)} is already enrolled")
            if db.execute("UPDATE people SET name = ? WHERE name = ?", (new, old)).rowcount == 0:
                raise KeyError(self._unknown(old))

    def remove(self, name: str) -> int:
        """Remove a person, their photos' embeddings and crops; returns how many photos went."""
        name = normalize_name(name)
        with self._write("remove a person from") as db:
            row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(self._unknown(name))
            n = db.execute("DELETE FROM photos WHERE person_id = ?", row).rowcount
            db.execute("DELETE FROM people WHERE id = ?", row)
        return n

    def remove_photo(self, photo_id: int) -> None:
        """Remove one enrolled photo; a person left with no photo is removed too."""
        with self._write("remove a photo from") as db:
            row = db.execute("SELECT person_id FROM photos WHERE id = ?", (int(photo_id),)).fetchone()
            if row is None:
                raise KeyError(f"no enrolled photo with id {photo_id} in {self.path}")
            db.execute("DELETE FROM photos WHERE id = ?", (int(photo_id),))
            db.execute(
                "DELETE FROM people WHERE id = ? AND NOT EXISTS (SELECT 1 FROM photos WHERE person_id = ?)",
                (row[0], row[0]),
            )

    # ------------------------------------------------------------------ reads
    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return [r[0] for r in self._read("SELECT name FROM people ORDER BY name")]

    def __len__(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM people")
        return rows[0][0] if rows else 0

    def __contains__(self, name: str) -> bool:
        try:
            name = normalize_name(name)
        except ValueError:
            return False
        return bool(self._read("SELECT 1 FROM people WHERE name = ?", (name,)))

    def people(self) -> dict[str, int]:
        """Each enrolled name with its number of photos."""
        rows = self._read(
            "SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN photos f "
            "ON f.person_id = p.id GROUP BY p.id ORDER BY p.name"
        )
        return {name: n for name, n in rows}

    def photos(self, name: str | None = None) -> list[Photo]:
        """The enrolled photos (of one person, or all)."""
        sql = "SELECT f.id, p.name, f.source, f.box, f.sha256 FROM photos f JOIN people p ON p.id = f.person_id"
        if name is not None:
            name = normalize_name(name)
            rows = self._read(sql + " WHERE p.name = ? ORDER BY f.id", (name,))
        else:
            rows = self._read(sql + " ORDER BY f.id")
        out = []
        for i, n, s, b, digest in rows:
            try:
                box = None if b is None else tuple(float(v) for v in json.loads(b))
            except (ValueError, TypeError):
                raise GalleryError(f"the gallery {self.path} is damaged: photo row {i} holds the box {b!r}") from None
            out.append(Photo(i, n, s, box, digest))
        if name is not None and not out:
            raise KeyError(self._unknown(name))
        return out

    def crop(self, photo_id: int) -> bytes | None:
        """The stored face crop (encoded image bytes) of one photo, or None."""
        rows = self._read("SELECT crop FROM photos WHERE id = ?", (int(photo_id),))
        if not rows:
            raise KeyError(f"no enrolled photo with id {photo_id} in {self.path}")
        return None if rows[0][0] is None else bytes(rows[0][0])

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]:
        """All stored embeddings (M, D) float32 and the name of each row (or one person's)."""
        if name is not None:
            name = normalize_name(name)
            if name not in self:
                raise KeyError(self._unknown(name))
            emb, labels = self._matrix()
            keep = [i for i, n in enumerate(labels) if n == name]
            return emb[keep], [name] * len(keep)
        return self._matrix()

    def _matrix(self) -> tuple[np.ndarray, list[str]]:
        """(embeddings, labels), cached until the database changes (also from another process)."""
        if not self._open_existing():
            return np.zeros((0, 0), np.float32), []
        with self._errors("read"):
            db = self._connection()
            key = (db.execute("PRAGMA data_version").fetchone()[0], db.total_changes)
        if self._cache is None or self._cache_key != key:
            rows = self._read(
                "SELECT f.id, p.name, f.embedding FROM photos f JOIN people p ON p.id = f.person_id ORDER BY f.id"
            )
            dim = self._dim() or 0
            for row_id, _, blob in rows:
                if not isinstance(blob, bytes) or len(blob) != 4 * dim:
                    size = len(blob) if isinstance(blob, (bytes, str)) else type(blob).__name__
                    raise GalleryError(
                        f"the gallery {self.path} is damaged: photo row {row_id} holds an embedding "
                        f"of {size} bytes, expected {dim} float32 ({4 * dim} bytes)"
                    )
            emb = (
                np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), dim)
                if rows
                else np.zeros((0, dim), np.float32)
            )
            if not np.all(np.isfinite(emb)):
                bad = int(rows[int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])][0])
                raise GalleryError(f"the gallery {self.path} is damaged: photo row {bad} holds NaN or inf")
            self._cache = (emb, [r[1] for r in rows])
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
        if queries.shape[1] != emb.shape[1]:
            raise ValueError(f"the gallery {self.path} holds {emb.shape[1]}-D embeddings, got {queries.shape[1]}-D")
        index = self._index
        if index is None:
            index = self._index = make_index(emb, self.backend)
            self._k = rows_for_runner_up(labels)  # enough rows to always meet a second identity
        dist, idx = index.search(queries, self._k)
        return matches_from_neighbours(dist, idx, labels)

    def _unknown(self, name: str) -> str:
        names = self.names()
        listed = (
            ", ".join(display_name(n) for n in names[:10]) + (" ..." if len(names) > 10 else "")
            if names
            else "nobody yet"
        )
        return f"{display_name(name)} is not enrolled in {self.path} (enrolled: {listed})"

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, people={len(self)}, backend={self.backend!r})"
