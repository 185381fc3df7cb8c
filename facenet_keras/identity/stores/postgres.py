"""The PostgreSQL + pgvector gallery store: one gallery shared by many processes and machines.

``postgresql://user:password@host:port/database`` (psycopg 3 and the ``pgvector`` adapter). Tables
``meta``, ``people`` and ``photos`` (foreign key, ON DELETE CASCADE) in a database of their own; each
write is one transaction, so a writer killed mid-enrolment leaves nothing of it. Concurrent writers
are safe (the person row is created with ON CONFLICT, the first embedding's dimension under an
advisory lock). Each photo row keeps its embedding, the photo's sha256 and a small face crop
(``gallery migrate`` re-encodes from the crops); ``meta`` holds the embedding space, the dimension
and the threshold. The schema is versioned in ``meta`` and created by the package
(:data:`MIGRATIONS`); a gallery of an older schema is only read by ``gallery migrate``, which
upgrades it (as for SQLite); a newer schema, or a database holding other tables, is refused
untouched. ``readonly`` opens create and change nothing (the sessions are read-only too). Every
failure is a one-line :class:`~facenet_keras.identity.stores.base.GalleryError`. A removed person's rows
are deleted and the table vacuumed; their bytes may still sit in the server's WAL and free space
until PostgreSQL reuses it (the server operator's backups too).

Search: below ``exact_below`` rows it is exact (a sequential scan); the HNSW index (``vector_l2_ops``)
is built (concurrently, once) when the gallery reaches that size, and from then on it proposes
``candidates`` rows at ``hnsw.ef_search`` = ``ef_search``,
which are re-ranked exactly in numpy (the same distance function as every other backend). When the
candidates hold one identity only, the runner-up comes from one more filtered index scan. A search
through the index is one round trip per query otherwise: ``hnsw.ef_search`` is a setting of each
pooled connection (set once), not of a transaction, and no liveness check precedes it (a read on a
dead connection is retried once on a fresh one).
URL options (taken out before connecting): ``?exact_below=20000&ef_search=100&candidates=64``.
"""

from __future__ import annotations

import json
import logging
import time
import weakref

import numpy as np

from facenet_keras.identity.search import NO_MATCH, Match
from facenet_keras.identity.stores.base import (
    GalleryError,
    Photo,
    check_embeddings,
    check_threshold,
    display_name,
    normalize_name,
)
from facenet_keras.identity.stores.remote import (
    GalleryServerError,
    check_add_space,
    checked_rows,
    redact,
    rerank,
    split_options,
    stored_threshold,
    unknown_name,
)

# version -> SQL that brings a database from version-1 to it. Never edit a released step: add one.
MIGRATIONS = {
    1: """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE photos (
    id BIGSERIAL PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT,
    box TEXT,
    embedding vector NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX photos_person ON photos(person_id);
""",
    2: """
ALTER TABLE photos ADD COLUMN sha256 TEXT;
CREATE INDEX photos_sha256 ON photos(sha256);
""",
    3: """
ALTER TABLE photos ADD COLUMN crop BYTEA;
""",
}
SCHEMA_VERSION = max(MIGRATIONS)
OUR_TABLES = {"meta", "people", "photos"}
_LOCK_KEY = 0x66616365  # advisory lock id for schema changes ("face")
# The pool retries a lost server in the background and logs each try: quiet unless the application
# configures logging itself (a NullHandler only stops Python's last-resort printing to stderr).
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
OPTIONS = {"exact_below": 20000, "ef_search": 100, "candidates": 64, "pool": 4}


def _connect_error(url: str, exc: Exception) -> GalleryServerError:
    """One clear line for a failed connection: unreachable, refused password, unknown database..."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    where = redact(url)
    low = str(exc).lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return GalleryServerError(f"PostgreSQL at {where} refused the user name or password")
    if "does not exist" in low and "database" in low:
        return GalleryServerError(f"PostgreSQL at {where}: {text} (create it, or name another database in the URL)")
    if "connection refused" in low or "timeout" in low or "could not translate" in low or "no route" in low:
        return GalleryServerError(f"cannot reach PostgreSQL at {where}: is the server running? ({text})")
    return GalleryServerError(f"cannot use PostgreSQL at {where}: {text}")


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _np(value) -> np.ndarray:
    """A pgvector value (Vector, or an array in older adapters) as float32 (D,)."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


class _DeadConnection(Exception):
    """A pooled connection found dead before anything was sent on it."""


class PostgresStore:
    """Enrolled people and their embeddings in PostgreSQL with pgvector (see the module docstring)."""

    def __init__(self, url: str, *, backend: str = "exact", readonly: bool = False, connect_timeout: float = 5.0):
        if backend != "exact":
            raise ValueError(
                f"search backend {backend!r} is for SQLite galleries; PostgreSQL searches "
                "with its own HNSW index (tune it with ?ef_search=... in the URL)"
            )
        try:
            import psycopg
            from pgvector.psycopg import register_vector
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise GalleryServerError(
                "PostgreSQL galleries need psycopg, psycopg-pool and pgvector: pip install 'facenet-keras[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self._register_vector = register_vector
        self.readonly = bool(readonly)
        dsn, self.options = split_options(url, OPTIONS)
        self.path = redact(url)
        self._dsn = dsn
        self._timeout = connect_timeout
        try:
            with psycopg.connect(dsn, connect_timeout=int(max(1, connect_timeout)), autocommit=True) as conn:
                self.schema_version = self._check_and_create(conn)
        except psycopg.OperationalError as exc:
            raise _connect_error(dsn, exc) from None
        except psycopg.Error as exc:
            raise GalleryServerError(f"cannot open the gallery {self.path}: {_one_line(exc)}") from None
        self._pool: ConnectionPool | None = ConnectionPool(
            dsn,
            min_size=1,
            max_size=self.options["pool"],
            open=True,
            kwargs={"connect_timeout": int(max(1, connect_timeout))},
            configure=self._configure,
            timeout=connect_timeout,  # liveness: checked in _run (writes), or the read retried
        )
        self._hnsw_set: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> its ef_search
        self._dim = None  # the stored dimension, once known
        self._pays: tuple[bool, float] | None = None  # (search through the index?, when checked)

    # ------------------------------------------------------------------ schema
    def _check_and_create(self, conn) -> int:
        """Refuse a foreign database or a newer schema (touching nothing); create the schema in an
        empty database (unless read-only). Returns the schema version found (or created)."""
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        foreign = sorted(tables - OUR_TABLES)
        version = 0
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row and str(row[0]).isdigit() else 0
        if version == 0 and tables:
            listed = ", ".join(foreign or sorted(tables))
            raise GalleryServerError(
                f"database {redact(self._dsn)} holds other tables ({listed}): give the "
                "gallery a database of its own; nothing was changed"
            )
        if version > SCHEMA_VERSION:
            raise GalleryServerError(
                f"{redact(self._dsn)} has gallery schema {version}, newer than this version of "
                f"facenet-keras reads ({SCHEMA_VERSION}): upgrade facenet-keras"
            )
        if version:
            return version  # an older one waits for upgrade_schema ('gallery migrate')
        if self.readonly:
            raise GalleryServerError(
                f"no gallery in {redact(self._dsn)} (an empty database; enrol someone first "
                "with 'facenet-keras enroll NAME PHOTO'); nothing was created"
            )
        has_vector = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if not has_vector:
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            if not available:
                raise GalleryServerError(
                    f"PostgreSQL at {redact(self._dsn)} has no pgvector extension installed: "
                    "install pgvector on the server (or use 'facenet-keras db start')"
                )
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except self._psycopg.errors.InsufficientPrivilege:
                raise GalleryServerError(
                    f"database {redact(self._dsn)} lacks the pgvector extension and this user "
                    "may not create it: ask an administrator to run CREATE EXTENSION vector"
                ) from None
        self._migrate(conn)
        return SCHEMA_VERSION

    def _migrate(self, conn) -> None:
        """Bring the schema to SCHEMA_VERSION in one transaction, under an advisory lock (another
        process may be doing the same)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = (
                conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if conn.execute("SELECT to_regclass('meta')").fetchone()[0]
                else None
            )
            current = int(row[0]) if row else 0  # another process may have migrated meanwhile
            for step in range(current + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[step])
            if current < SCHEMA_VERSION:
                conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE "
                    "SET value = EXCLUDED.value",
                    (str(SCHEMA_VERSION),),
                )

    @property
    def needs_upgrade(self) -> bool:
        """Whether this is a gallery of an older schema that only ``upgrade_schema`` may touch."""
        return self.schema_version != SCHEMA_VERSION

    def upgrade_schema(self) -> bool:
        """Bring a gallery of an older schema to this one (``gallery migrate``); True if it did."""
        if not self.needs_upgrade:
            return False
        self._writable("upgrade")
        self._run(self._migrate, retry=False, current=False)
        self.schema_version = SCHEMA_VERSION
        return True

    @property
    def legacy_model_id(self) -> str | None:
        """What a gallery of schema 1 or 2 recorded as its 'model_id' (the pipeline id), else None."""
        return self._meta("model_id", current=False) if self.needs_upgrade else None

    def set_space_id(self, space_id: str) -> None:
        """Record the embedding space of embeddings already stored (a schema upgrade that keeps them)."""

        def write(conn):
            with conn.transaction():
                self._put(conn, "space_id", space_id)
                conn.execute("DELETE FROM meta WHERE key = 'model_id'")

        self._write(write, "record the embedding space of")

    def _configure(self, conn) -> None:
        self._register_vector(conn)
        conn.autocommit = True
        if self.readonly:  # the server refuses any write in these sessions, whatever the code does
            conn.execute("SET default_transaction_read_only = on")

    def _writable(self, action: str) -> None:
        if self.readonly:
            raise GalleryError(f"the gallery {self.path} was opened read-only: cannot {action} it")

    def _write(self, fn, action: str):
        self._writable(action)
        return self._run(fn, retry=False)

    def _run(self, fn, *, retry: bool = True, current: bool = True, check: bool = True):
        """Run ``fn(conn)``; a read whose connection died (server restarted) is retried once on a fresh one.
        ``current``: refuse a gallery of an older schema (until ``gallery migrate``). ``check``: first make
        sure the pooled connection is alive (one empty round trip; a dead one is replaced), so a write
        after a server restart goes through; a search skips it (its retry covers a dead connection)."""
        psycopg = self._psycopg
        from psycopg_pool import PoolTimeout

        if current and self.needs_upgrade:
            raise GalleryError(
                f"{self.path} is a gallery of schema {self.schema_version} (an older facenet-keras); "
                f"upgrade it with 'facenet-keras --gallery URL gallery migrate'"
            )
        pool = self._pool
        if pool is None:
            raise GalleryError(f"the gallery {self.path} is closed")
        for attempt in (0, 1):
            try:
                with pool.connection() as conn:
                    if check:
                        try:
                            pool.check_connection(conn)
                        except psycopg.OperationalError as exc:
                            raise _DeadConnection(_one_line(exc)) from exc  # nothing sent: safe to retry
                    return fn(conn)
            except _DeadConnection as exc:
                if attempt == 0:
                    pool.check()
                    continue
                raise GalleryServerError(f"PostgreSQL at {self.path} failed: {exc}") from exc
            except PoolTimeout as exc:
                raise GalleryServerError(
                    f"cannot reach PostgreSQL at {self.path}: no connection within "
                    f"{self._timeout:g} s (is the server running?)"
                ) from exc
            except psycopg.OperationalError as exc:
                if attempt == 0 and retry:
                    pool.check()
                    continue
                raise GalleryServerError(
                    f"PostgreSQL at {self.path} failed: {_one_line(exc)}"
                    + ("" if retry else " (the write was rolled back; nothing was stored)")
                ) from exc
            except psycopg.errors.ReadOnlySqlTransaction as exc:
                raise GalleryError(
                    f"the gallery {self.path} is read-only (opened read-only, or a read-only "
                    "server): nothing was changed"
                ) from exc
            except psycopg.Error as exc:  # a constraint, a damaged value...: one line, the transaction rolled back
                raise GalleryServerError(f"PostgreSQL at {self.path} refused the operation: {_one_line(exc)}") from exc

    # ------------------------------------------------------------------ metadata
    def _meta(self, key: str, *, current: bool = True) -> str | None:
        row = self._run(
            lambda c: c.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone(), current=current
        )
        return row[0] if row else None

    @staticmethod
    def _put(conn, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, value)
        )

    def _set_meta(self, key: str, value: str | None) -> None:
        def write(conn):
            with conn.transaction():
                if value is None:
                    conn.execute("DELETE FROM meta WHERE key = %s", (key,))
                else:
                    self._put(conn, key, value)

        self._write(write, f"store {key} in")

    @property
    def threshold(self) -> float | None:
        """A calibrated distance threshold stored with the gallery, or None."""
        return stored_threshold(self.path, self._meta("threshold"))

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._set_meta("threshold", None if value is None else repr(check_threshold(value)))

    @property
    def space_id(self) -> str | None:
        """The embedding space of the stored embeddings (None while nothing recorded one)."""
        return self._meta("space_id", current=False)

    def _stored_dim(self, conn) -> int | None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        if row is None:
            return None
        if not str(row[0]).isdigit() or int(row[0]) == 0:
            raise GalleryError(f"the gallery {self.path} is damaged: its meta row 'dim' holds {row[0]!r}")
        return int(row[0])

    # ------------------------------------------------------------------ writes
    def add(
        self, name: str, embeddings, *, sources=None, boxes=None, space_id: str | None = None, crops=None, digests=None
    ) -> list[int]:
        """Enrol ``embeddings`` (N, D) for ``name`` in one transaction; returns the new photo ids.
        ``crops``: encoded face crops (bytes), ``digests``: the photos' sha256, one per embedding (or None)."""
        name, emb, sources, boxes, crops, digests = checked_rows(name, embeddings, sources, boxes, None, crops, digests)
        self._writable("enrol into")
        dim = emb.shape[1]
        now = time.time()
        Vector = __import__("pgvector").Vector

        def write(conn):
            with conn.transaction():
                stored_dim = self._stored_dim(conn)
                if stored_dim is None:  # the first enrolment fixes the dimension
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                    stored_dim = self._stored_dim(conn)
                    if stored_dim is None:
                        conn.execute(f"ALTER TABLE photos ALTER COLUMN embedding TYPE vector({dim})")
                        self._put(conn, "dim", str(dim))
                        stored_dim = dim
                check_embeddings(emb, stored_dim)
                if space_id is not None:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY + 2,))  # one space, whoever races
                    stored = conn.execute("SELECT value FROM meta WHERE key = 'space_id'").fetchone()
                    empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM photos)").fetchone()[0]
                    if check_add_space(self.path, stored[0] if stored else None, space_id, empty):
                        self._put(conn, "space_id", space_id)
                conn.execute(
                    "INSERT INTO people(name, created) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, now)
                )
                (person_id,) = conn.execute("SELECT id FROM people WHERE name = %s", (name,)).fetchone()
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO photos(person_id, source, box, embedding, created, sha256, crop) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                        [
                            (person_id, source, None if box is None else json.dumps(box), Vector(vec), now, sha, crop)
                            for vec, source, box, sha, crop in zip(emb, sources, boxes, digests, crops)
                        ],
                        returning=True,
                    )
                    ids = []
                    while True:
                        ids.append(cur.fetchone()[0])
                        if not cur.nextset():
                            break
                return ids

        ids = self._write(write, "enrol into")
        self._maybe_build_index()
        return ids

    def replace_embeddings(self, ids, embeddings, space_id: str) -> None:
        """Overwrite the embeddings of rows ``ids`` and record ``space_id``, in one transaction (``gallery
        migrate``); the calibrated threshold, which belonged to the old space, is dropped. A new
        dimension rebuilds the column (and, later, the HNSW index)."""
        emb = check_embeddings(embeddings)
        ids = [int(i) for i in ids]
        if len(ids) != len(emb):
            raise ValueError("one embedding per row id")
        Vector = __import__("pgvector").Vector

        def write(conn):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute("LOCK TABLE photos IN SHARE ROW EXCLUSIVE MODE")  # no enrolment meanwhile
                have = {r[0] for r in conn.execute("SELECT id FROM photos")}
                if have != set(ids):
                    raise GalleryError(f"the gallery {self.path} changed during the migration; run it again")
                new_dim = emb.shape[1] != self._stored_dim(conn)
                if new_dim:
                    conn.execute("DROP INDEX IF EXISTS photos_hnsw")
                    conn.execute("ALTER TABLE photos ALTER COLUMN embedding TYPE vector")
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE photos SET embedding = %s WHERE id = %s", [(Vector(vec), i) for i, vec in zip(ids, emb)]
                    )
                if new_dim:
                    conn.execute(f"ALTER TABLE photos ALTER COLUMN embedding TYPE vector({emb.shape[1]})")
                self._put(conn, "dim", str(emb.shape[1]))
                self._put(conn, "space_id", space_id)
                conn.execute("DELETE FROM meta WHERE key IN ('model_id', 'threshold')")  # calibrated for the old space

        self._write(write, "re-encode")
        self._dim, self._pays = None, None
        self._maybe_build_index()

    def has_index(self, conn=None) -> bool:
        """Whether the HNSW index exists (it is built once the gallery reaches ``exact_below`` rows)."""

        def read(c):
            return c.execute("SELECT to_regclass('photos_hnsw') IS NOT NULL").fetchone()[0]

        return read(conn) if conn is not None else self._run(read)

    def _index_pays(self, conn) -> bool:
        """Search through the index: it exists and the gallery has ``exact_below`` rows (checked every 10 s)."""
        now = time.monotonic()
        if self._pays is None or now - self._pays[1] > 10.0:
            self._pays = (self.has_index(conn) and self.row_count(conn) >= self.options["exact_below"], now)
        return self._pays[0]

    def _maybe_build_index(self) -> None:
        if not self.has_index() and self.row_count() >= self.options["exact_below"]:
            self.build_index()

    def build_index(self, *, m: int = 16, ef_construction: int = 128) -> bool:
        """Build the HNSW index (``vector_l2_ops``) now, CONCURRENTLY so writers are not blocked; one
        process builds it (advisory lock), others go on. Below ``exact_below`` rows it does not pay:
        inserts into an HNSW index cost milliseconds each, a sequential scan of 20k rows a few ms.
        ``ef_construction`` 128 rather than pgvector's 64: at 1M rows recall@1 at ef_search 40 goes
        from 0.983 to 0.993; the 1M build took 761 s on 2 quiet cores (benchmarks/gallery_backends.py)."""

        def build(conn):
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY + 1,)).fetchone()[0]:
                return False
            try:
                if self.has_index(conn):
                    return False
                conn.execute("DROP INDEX IF EXISTS photos_hnsw")  # an invalid one left by a crashed build
                conn.execute(
                    f"CREATE INDEX CONCURRENTLY photos_hnsw ON photos USING hnsw (embedding vector_l2_ops) "
                    f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
                )
                return True
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY + 1,))

        return self._run(build, retry=False)

    def rename(self, old: str, new: str) -> None:
        """Rename a person (all their photos follow)."""
        old, new = normalize_name(old), normalize_name(new)

        def write(conn):
            with conn.transaction():
                if new != old and conn.execute("SELECT 1 FROM people WHERE name = %s", (new,)).fetchone():
                    raise ValueError(f"{display_name(new)} is already enrolled")
                if conn.execute("UPDATE people SET name = %s WHERE name = %s", (new, old)).rowcount == 0:
                    raise KeyError(self._unknown(conn, old))

        self._write(write, "rename a person in")

    def remove(self, name: str) -> int:
        """Erase a person: their rows (embeddings, face crops, photo hashes); returns how many photos went."""
        name = normalize_name(name)

        def write(conn):
            with conn.transaction():
                row = conn.execute("SELECT id FROM people WHERE name = %s FOR UPDATE", (name,)).fetchone()
                if row is None:
                    raise KeyError(self._unknown(conn, name))
                n = conn.execute("DELETE FROM photos WHERE person_id = %s", row).rowcount
                conn.execute("DELETE FROM people WHERE id = %s", row)
                return n

        n = self._write(write, "remove a person from")
        self._vacuum()
        return n

    def remove_photo(self, photo_id: int) -> None:
        """Remove one enrolled photo; a person left with no photo is removed too."""

        def write(conn):
            with conn.transaction():
                row = conn.execute("DELETE FROM photos WHERE id = %s RETURNING person_id", (int(photo_id),)).fetchone()
                if row is None:
                    raise KeyError(f"no enrolled photo with id {photo_id} in {self.path}")
                conn.execute(
                    "DELETE FROM people WHERE id = %s AND NOT EXISTS (SELECT 1 FROM photos WHERE person_id = %s)",
                    (row[0], row[0]),
                )

        self._write(write, "remove a photo from")
        self._vacuum()

    def _vacuum(self) -> None:
        """Reclaim the deleted rows now (their pages are pruned; a best effort: VACUUM needs no lock
        that writers wait on, and a failure leaves autovacuum to do it)."""
        try:
            self._run(lambda c: c.execute("VACUUM photos, people"), retry=False)
        except GalleryError:
            pass

    # ------------------------------------------------------------------ reads
    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return [r[0] for r in self._run(lambda c: c.execute("SELECT name FROM people ORDER BY name").fetchall())]

    def __len__(self) -> int:
        return self._run(lambda c: c.execute("SELECT COUNT(*) FROM people").fetchone()[0])

    def __contains__(self, name: str) -> bool:
        try:
            name = normalize_name(name)
        except ValueError:
            return False
        return self._run(lambda c: c.execute("SELECT 1 FROM people WHERE name = %s", (name,)).fetchone()) is not None

    def people(self) -> dict[str, int]:
        """Each enrolled name with its number of photos."""
        rows = self._run(
            lambda c: c.execute(
                "SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN photos f ON f.person_id = p.id "
                "GROUP BY p.id ORDER BY p.name"
            ).fetchall()
        )
        return {name: n for name, n in rows}

    def photos(self, name: str | None = None) -> list[Photo]:
        """The enrolled photos (of one person, or all), in enrolment order."""
        sql = "SELECT f.id, p.name, f.source, f.box, f.sha256 FROM photos f JOIN people p ON p.id = f.person_id"
        name = None if name is None else normalize_name(name)

        def read(conn):
            rows = (
                conn.execute(sql + " WHERE p.name = %s ORDER BY f.id", (name,))
                if name is not None
                else conn.execute(sql + " ORDER BY f.id")
            ).fetchall()
            if name is not None and not rows:
                raise KeyError(self._unknown(conn, name))
            return rows

        out = []
        for i, n, s, b, digest in self._run(read):
            try:
                box = None if b is None else tuple(float(v) for v in json.loads(b))
            except (ValueError, TypeError):
                raise GalleryError(f"the gallery {self.path} is damaged: photo row {i} holds the box {b!r}") from None
            out.append(Photo(i, n, s, box, digest))
        return out

    def crop(self, photo_id: int) -> bytes | None:
        """The stored face crop (encoded image bytes) of one photo, or None."""
        row = self._run(lambda c: c.execute("SELECT crop FROM photos WHERE id = %s", (int(photo_id),)).fetchone())
        if row is None:
            raise KeyError(f"no enrolled photo with id {photo_id} in {self.path}")
        return None if row[0] is None else bytes(row[0])

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]:
        """All stored embeddings (M, D) float32 and the name of each row (or one person's), in enrolment order."""
        sql = "SELECT p.name, f.embedding, f.id FROM photos f JOIN people p ON p.id = f.person_id"
        name = None if name is None else normalize_name(name)

        def read(conn):
            rows = (
                conn.execute(sql + " WHERE p.name = %s ORDER BY f.id", (name,))
                if name is not None
                else conn.execute(sql + " ORDER BY f.id")
            ).fetchall()
            if name is not None and not rows:
                raise KeyError(self._unknown(conn, name))
            return rows, self._stored_dim(conn) or 0

        rows, dim = self._run(read)
        vecs = [_np(r[1]) for r in rows]
        for r, v in zip(rows, vecs):
            if v.shape != (dim,):
                raise GalleryError(
                    f"the gallery {self.path} is damaged: photo row {r[2]} holds a {v.size}-D "
                    f"embedding, expected {dim}-D"
                )
        emb = np.stack(vecs) if rows else np.zeros((0, dim), np.float32)
        return emb, [r[0] for r in rows]

    def row_count(self, conn=None) -> int:
        """Rows in ``photos``: the planner's estimate when it has one (cheap), else an exact count."""

        def read(c):
            est = c.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'photos'::regclass").fetchone()[0]
            return int(est) if est is not None and est >= 0 else c.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

        return read(conn) if conn is not None else self._run(read)

    def search(self, queries, *, exact: bool | None = None) -> list[Match]:
        """Per query (Q, D): the nearest identity, its distance and the runner-up. ``exact`` forces
        (True) or forbids (False) the exact scan; by default it is exact below ``exact_below`` rows."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        Vector = __import__("pgvector").Vector

        def read(conn):
            dim = self._dim or conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
            if dim is None:
                return [NO_MATCH for _ in q]
            self._dim = dim  # fixed once set: no round trip per search
            if q.shape[1] != int(dim[0]):
                raise ValueError(f"queries have dimension {q.shape[1]}, but the gallery holds {dim[0]}-D embeddings")
            use_exact = exact if exact is not None else not self._index_pays(conn)
            if use_exact:  # planner settings for this transaction only (other queries keep their indexes)
                with conn.transaction():
                    conn.execute("SET LOCAL enable_indexscan = off")
                    conn.execute("SET LOCAL enable_bitmapscan = off")
                    return [self._search_one(conn, vec, Vector(vec), True) for vec in q]
            # The index path, one round trip per query in the common case: the HNSW settings are the
            # connection's own (set once, not per search), no transaction, no liveness check (a read on
            # a dead connection is retried by _run).
            self._hnsw_session(conn, max(self.options["ef_search"], self.options["candidates"]))
            return [self._search_one(conn, vec, Vector(vec), False) for vec in q]

        return self._run(read, check=False)

    def _hnsw_session(self, conn, ef: int) -> None:
        """``hnsw.ef_search`` = ``ef`` and relaxed-order iterative scans for this pooled connection's
        session; one round trip only when its value differs from what this connection already has."""
        if self._hnsw_set.get(conn) != int(ef):
            conn.execute(f"SET hnsw.ef_search = {int(ef)}; SET hnsw.iterative_scan = relaxed_order")
            self._hnsw_set[conn] = int(ef)

    def _search_one(self, conn, vec, qv, exact: bool) -> Match:
        if exact:  # the nearest photo of the two nearest people: exact and complete
            rows = conn.execute(
                "SELECT name, embedding FROM (SELECT DISTINCT ON (f.person_id) p.name, f.embedding, "
                "f.embedding <-> %s AS d FROM photos f JOIN people p ON p.id = f.person_id "
                "ORDER BY f.person_id, d) best ORDER BY d LIMIT 2",
                (qv,),
            ).fetchall()
        else:  # the limit is a literal, so a prepared (generic) plan still knows it and keeps the index scan;
            # vectors travel in binary (exact float32, no text formatting or parsing)
            rows = conn.execute(
                "SELECT p.name, f.embedding FROM (SELECT person_id, embedding FROM photos ORDER BY embedding <-> %b "
                f"LIMIT {int(self.options['candidates'])}) f JOIN people p ON p.id = f.person_id",
                (qv,),
                binary=True,
            ).fetchall()
            if len({r[0] for r in rows}) == 1:  # one identity only: its runner-up from one more scan
                rows += conn.execute(
                    "SELECT p.name, f.embedding FROM (SELECT person_id, embedding FROM photos WHERE person_id <> "
                    "(SELECT id FROM people WHERE name = %s) ORDER BY embedding <-> %b LIMIT 1) f "
                    "JOIN people p ON p.id = f.person_id",
                    (rows[0][0], qv),
                    binary=True,
                ).fetchall()
        if not rows:
            return NO_MATCH
        return rerank(vec, np.stack([_np(r[1]) for r in rows]), [r[0] for r in rows])

    def explain(self, query, *, exact: bool = False) -> str:
        """PostgreSQL's plan for one search (to show that the HNSW index is used)."""
        Vector = __import__("pgvector").Vector

        def read(conn):
            with conn.transaction():
                if exact:
                    conn.execute("SET LOCAL enable_indexscan = off")
                conn.execute(f"SET LOCAL hnsw.ef_search = {int(self.options['ef_search'])}")
                rows = conn.execute(
                    "EXPLAIN SELECT person_id FROM photos ORDER BY embedding <-> %s LIMIT %s",
                    (Vector(np.asarray(query, np.float32)), self.options["candidates"]),
                ).fetchall()
            return "\n".join(r[0] for r in rows)

        return self._run(read)

    def _unknown(self, conn, name: str) -> str:
        return unknown_name(
            self.path, name, [r[0] for r in conn.execute("SELECT name FROM people ORDER BY name LIMIT 11")]
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.path!r})"
