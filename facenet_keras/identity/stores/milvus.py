"""The Milvus gallery store: galleries past what one PostgreSQL server holds.

``milvus://[user:password@]host:port[/name]`` talks to a Milvus server or cluster; a local path
ending in ``.milvus.db`` opens it through ``milvus-lite`` (an in-process re-implementation behind
the same pymilvus client, one process per file). The code path is the one a cluster uses.

Three collections per gallery: ``{name}_photos`` (one row per enrolled photo: random int64 id,
person name, enrolment batch id, JSON info with source/box/photo sha256, time, float32 embedding
with an HNSW index, L2), ``{name}_crops`` (each photo's face crop, base64 in parts of at most 48 000 bytes,
for ``gallery migrate``) and ``{name}_meta`` (key/value: schema version, dimension, the embedding
space and its generation, threshold, and one commit marker per enrolment).

Consistency without multi-row transactions: an enrolment writes its crops and photo rows under a
fresh batch id, THEN one marker row ``batch:<id>`` naming the current generation. A row is visible
only when its batch's marker exists and names the gallery's current generation, and one row is
written atomically, so a writer killed mid-enrolment leaves only invisible rows (cleaned by
:meth:`MilvusStore.vacuum`), never half a person. ``gallery migrate`` (:meth:`replace_embeddings`)
writes the re-encoded rows (new ids) under a new generation, drops the threshold, then switches
the generation and the space in one meta row: the whole gallery changes space at once.

Reads use Strong consistency by default: a search sees every write acknowledged before it began, in
any process (a removed person is never found again), and waits for the server's next time tick to
know it (``proxy.timeTickInterval``, 200 ms by default). ``?consistency=bounded`` (or ``session``,
``eventually``: Milvus's levels) lets searches alone read without that wait: a search may then miss
writes of the last ``common.gracefulTime`` (5 s by default) made by other processes, so a person
enrolled or removed elsewhere is found or still found for up to that long, and during another
process's ``gallery migrate`` a search may find no one; ``session`` also sees this process's own
writes. Listings, exports and every read a write decides on stay Strong. Removing a person deletes their
batches' markers first (each batch vanishes whole), then the rows and crops (milvus-lite and
Milvus drop deleted rows' bytes at compaction, not at once). ``rename`` rewrites the person's rows
in one upsert request: atomic in milvus-lite, per-shard on a cluster (a crash mid-rename there can
leave rows under both names; renaming again finishes it). Concurrent writers to one person from several processes need a
Milvus server (milvus-lite locks its file to one process).

Search: the HNSW index proposes ``candidates`` rows at ``ef`` = ``ef_search``; rows of uncommitted
batches are dropped and the rest re-ranked exactly in numpy (the same distance every backend reports).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
from urllib.parse import urlsplit

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

SCHEMA_VERSION = 2  # 2: crops, photo sha256 in every row's info, embedding space and generations
# pymilvus warns on every iterator that milvus-lite has no server timestamp (it falls back to the client's).
_filtered: list[logging.Filterer] = list(logging.getLogger("pymilvus").handlers) or [logging.getLogger("pymilvus")]
for _handler in _filtered:
    _handler.addFilter(lambda record: "mvccTs" not in record.getMessage())
OPTIONS = {"ef_search": 100, "candidates": 64, "hnsw_m": 16, "ef_construction": 200, "consistency": "strong"}
# ?consistency= -> the Milvus level a search reads at (writes, listings and every read a write decides on stay Strong)
CONSISTENCY = {"strong": "Strong", "bounded": "Bounded", "session": "Session", "eventually": "Eventually"}
_NAME_LEN = 1024  # bytes: MAX_NAME_LENGTH (200) characters of UTF-8 fit
_PAGE = 4096
_CROP_PART = 48_000  # bytes per crop row (base64: 64 000 characters; a Milvus VARCHAR holds 65535)


def _lit(text: str) -> str:
    """A string literal for a Milvus filter expression (double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(texts) -> str:
    return "[" + ", ".join(_lit(t) for t in texts) + "]"


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc).strip().splitlines()[-1]


def _parts(crop: bytes) -> list[str]:
    return [base64.b64encode(crop[k : k + _CROP_PART]).decode("ascii") for k in range(0, len(crop), _CROP_PART)]


class MilvusStore:
    """Enrolled people and their embeddings in Milvus (see the module docstring).

    ``readonly``: open an existing gallery for reading only (nothing is created or changed). A
    gallery of schema 1 opens only for :meth:`upgrade_schema` (``facenet-keras gallery migrate``).
    """

    def __init__(self, url: str, *, backend: str = "exact", readonly: bool = False, timeout: float = 10.0):
        if backend != "exact":
            raise ValueError(
                f"search backend {backend!r} is for SQLite galleries; Milvus searches with "
                "its own HNSW index (tune it with ?ef_search=... in the URL)"
            )
        try:
            from pymilvus import DataType, MilvusClient, MilvusException
        except ImportError as exc:
            raise GalleryServerError(
                "Milvus galleries need pymilvus (and milvus-lite for a local *.milvus.db): "
                "pip install 'facenet-keras[milvus]'"
            ) from exc
        self._DataType, self._MilvusException = DataType, MilvusException
        self.readonly = bool(readonly)
        url, self.options = split_options(url, OPTIONS)
        level = self.options["consistency"]
        if level.lower() not in CONSISTENCY:
            raise GalleryServerError(
                f"gallery URL option consistency={level!r} is not one of "
                f"{', '.join(CONSISTENCY)} (Milvus's read consistency levels; strong is the default)"
            )
        self.options["consistency"] = level.lower()
        self._local = not url.startswith("milvus://")
        if not self._local:
            parts = urlsplit(url)
            prefix = parts.path.strip("/") or "facenet"
            uri = f"http://{parts.hostname}:{parts.port or 19530}"
            token = f"{parts.username}:{parts.password}" if parts.username else ""
            self.path = redact(url)
        else:
            from pathlib import Path

            from facenet_keras.files import private_dir

            local = Path(url).expanduser().resolve()
            if not local.name.endswith(".milvus.db"):
                raise ValueError(f"a local Milvus gallery is a path ending in .milvus.db, got {url!r}")
            if not local.exists():
                if self.readonly:
                    raise GalleryError(
                        f"no gallery at {local} (check --gallery; enrol someone first with "
                        "'facenet-keras enroll NAME PHOTO')"
                    )
                private_dir(local.parent)
            uri, token, prefix, self.path = str(local), "", "facenet", str(local)
        if not prefix.replace("_", "").isalnum():
            raise ValueError(f"a Milvus gallery name is letters, digits and _, got {prefix!r}")
        self._photos, self._metac, self._crops = f"{prefix}_photos", f"{prefix}_meta", f"{prefix}_crops"
        old_umask = os.umask(0o077)  # milvus-lite creates its folder (``*.milvus.db/``) private, 0700
        try:
            self._client = MilvusClient(uri=uri, token=token, timeout=timeout)
        except MilvusException as exc:
            if "local" in _message(exc).lower():
                raise GalleryServerError(
                    f"cannot open {self.path}: milvus-lite could not open it (another process "
                    "has it open? milvus-lite allows one process per file)"
                ) from None
            raise GalleryServerError(f"cannot reach Milvus at {self.path}: {_message(exc)}") from None
        finally:
            os.umask(old_umask)
        self._committed: dict[str, int] = {}  # batch id -> the generation its marker names
        self._dim, self._photos_exist = None, False
        self.schema_version = SCHEMA_VERSION
        try:
            self._open_schema()
        except BaseException:
            self.close()
            raise

    @property
    def _search_level(self) -> str:
        """The Milvus consistency level a search reads at (from ``options["consistency"]``)."""
        return CONSISTENCY[self.options["consistency"]]

    # ------------------------------------------------------------------ schema
    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._MilvusException as exc:
            raise GalleryServerError(f"Milvus at {self.path} failed: {_message(exc)}") from None

    def _open_schema(self) -> None:
        c = self._client
        have = set(self._call(c.list_collections))
        if self._metac in have:
            self._call(c.load_collection, self._metac)
            version = self._meta("schema_version")
            if version is None or not version.isdigit():
                raise GalleryServerError(
                    f"{self.path} holds a collection {self._metac!r} that is not a facenet-keras "
                    "gallery's: name another gallery (milvus://host:port/NAME); nothing was "
                    "changed"
                )
            if int(version) > SCHEMA_VERSION:
                raise GalleryServerError(
                    f"{self.path} has gallery schema {version}, newer than this version of "
                    f"facenet-keras reads ({SCHEMA_VERSION}): upgrade facenet-keras"
                )
            self.schema_version = int(version)
        else:
            if self._photos in have:
                raise GalleryServerError(
                    f"{self.path} holds a collection {self._photos!r} without gallery metadata: "
                    "name another gallery; nothing was changed"
                )
            if self.readonly:
                raise GalleryError(f"no gallery at {self.path} (enrol someone first); nothing was created")
            schema = self._key_value_schema()
            index = c.prepare_index_params()
            index.add_index("v", index_type="FLAT", metric_type="L2")
            self._call(c.create_collection, self._metac, schema=schema, index_params=index, consistency_level="Strong")
            self._call(c.load_collection, self._metac)
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        for name in (self._photos, self._crops):
            if name in have:
                self._call(c.load_collection, name)

    def _key_value_schema(self, extra=()):
        DataType = self._DataType
        schema = self._client.create_schema(auto_id=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
        for name, dtype in extra:
            schema.add_field(name, dtype)
        schema.add_field("value", DataType.VARCHAR, max_length=65535)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one vector field per collection
        return schema

    def _create_photos(self, dim: int) -> None:
        DataType, c = self._DataType, self._client
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("name", DataType.VARCHAR, max_length=_NAME_LEN)
        schema.add_field("batch", DataType.VARCHAR, max_length=64)
        schema.add_field("info", DataType.VARCHAR, max_length=16384)
        schema.add_field("created", DataType.DOUBLE)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        index = c.prepare_index_params()
        index.add_index(
            "embedding",
            index_type="HNSW",
            metric_type="L2",
            params={"M": self.options["hnsw_m"], "efConstruction": self.options["ef_construction"]},
        )
        self._call(c.create_collection, self._photos, schema=schema, index_params=index, consistency_level="Strong")
        self._call(c.load_collection, self._photos)

    def _ensure_crops(self) -> None:
        c = self._client
        if self._crops in set(self._call(c.list_collections)):
            return
        schema = self._key_value_schema([("photo", self._DataType.INT64), ("part", self._DataType.INT64)])
        index = c.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        self._call(c.create_collection, self._crops, schema=schema, index_params=index, consistency_level="Strong")
        self._call(c.load_collection, self._crops)

    @property
    def needs_upgrade(self) -> bool:
        """Whether this is a gallery of an older schema that only ``upgrade_schema`` may touch."""
        return self.schema_version != SCHEMA_VERSION

    def upgrade_schema(self) -> bool:
        """Bring a schema-1 gallery to schema 2 (crops and embedding spaces); True if it did."""
        if not self.needs_upgrade:
            return False
        self._writable("upgrade")
        self._ensure_crops()
        self._set_meta("schema_version", str(SCHEMA_VERSION))
        self.schema_version = SCHEMA_VERSION
        return True

    @property
    def legacy_model_id(self) -> str | None:
        """What a schema-1 gallery recorded as its 'model_id' (the pipeline id), else None."""
        return self._meta("model_id") if self.needs_upgrade else None

    def set_space_id(self, space_id: str) -> None:
        """Record the embedding space of embeddings already stored (a schema upgrade that keeps them)."""
        self._writable("record the embedding space of")
        _, gen = self._space()
        self._set_meta("space", json.dumps({"space_id": space_id, "generation": gen}))
        self._set_meta("model_id", None)

    def _require_current(self) -> None:
        if self.needs_upgrade:
            raise GalleryError(
                f"{self.path} is a gallery of schema {self.schema_version} (an older facenet-keras); "
                f"upgrade it with 'facenet-keras --gallery {self.path} gallery migrate'"
            )

    def _writable(self, action: str) -> None:
        if self.readonly:
            raise GalleryError(f"the gallery {self.path} was opened read-only: cannot {action} it")

    # ------------------------------------------------------------------ metadata
    def _meta_many(self, keys: list[str], level: str = "Strong") -> dict[str, str]:
        if not keys:
            return {}
        rows = self._call(
            self._client.query,
            self._metac,
            filter=f"key in {_list(keys)}",
            output_fields=["key", "value"],
            consistency_level=level,
        )
        return {r["key"]: r["value"] for r in rows}

    def _meta(self, key: str) -> str | None:
        return self._meta_many([key]).get(key)

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._call(self._client.delete, self._metac, filter=f"key == {_lit(key)}")
        else:
            self._call(self._client.upsert, self._metac, [{"key": key, "value": value, "v": [0.0, 0.0]}])

    def _space(self, value: str | None = None, *, read: bool = True) -> tuple[str | None, int]:
        """(embedding space, generation) from the meta row 'space' (read now unless ``value`` is given)."""
        if read:
            value = self._meta("space")
        if value is None:
            return None, 0
        try:
            doc = json.loads(value)
            return doc["space_id"], int(doc["generation"])
        except (ValueError, KeyError, TypeError):
            raise GalleryError(f"the gallery {self.path} is damaged: its meta row 'space' holds {value!r}") from None

    @property
    def threshold(self) -> float | None:
        """A calibrated distance threshold stored with the gallery, or None."""
        return stored_threshold(self.path, self._meta("threshold"))

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._writable("store a threshold in")
        self._set_meta("threshold", None if value is None else repr(check_threshold(value)))

    @property
    def space_id(self) -> str | None:
        """The embedding space of the stored embeddings (None while nothing recorded one)."""
        return self._space()[0]

    def _has_photos(self) -> bool:
        if not self._photos_exist:  # once created, the collection stays: no round trip per search
            self._photos_exist = self._photos in set(self._call(self._client.list_collections))
        return self._photos_exist

    def _stored_dim(self, value: str | None) -> int | None:
        if value is None:
            return None
        if not value.isdigit() or int(value) == 0:
            raise GalleryError(f"the gallery {self.path} is damaged: its meta row 'dim' holds {value!r}")
        return int(value)

    # ------------------------------------------------------------------ writes
    def add(
        self, name: str, embeddings, *, sources=None, boxes=None, space_id: str | None = None, crops=None, digests=None
    ) -> list[int]:
        """Enrol ``embeddings`` (N, D) for ``name``: crops and rows first, then the one commit marker
        that makes them visible together. ``crops``: encoded face crops (bytes), ``digests``: the
        photos' sha256, one per embedding (or None). Returns the new photo ids."""
        name, emb, sources, boxes, crops, digests = checked_rows(name, embeddings, sources, boxes, None, crops, digests)
        self._writable("enrol into")
        self._require_current()
        meta = self._meta_many(["dim", "space"])
        dim = self._stored_dim(meta.get("dim"))
        check_embeddings(emb, dim)
        stored, gen = self._space(meta.get("space"), read=False)
        empty = stored is None or stored == space_id or not self._rows(fields=["id"], gen=gen)
        record = check_add_space(self.path, stored, space_id, empty)
        if dim is None:
            if not self._has_photos():
                self._create_photos(emb.shape[1])
            self._set_meta("dim", str(emb.shape[1]))
        if record and space_id != stored:
            self._set_meta("space", json.dumps({"space_id": space_id, "generation": gen}))
        batch, now = secrets.token_hex(16), time.time()
        ids = [secrets.randbits(62) for _ in emb]
        rows = [
            {
                "id": i,
                "name": name,
                "batch": batch,
                "created": now,
                "embedding": vec,
                "info": json.dumps({"pos": k, "source": src, "sha256": sha, "box": box}),
            }
            for k, (i, vec, src, box, sha) in enumerate(zip(ids, emb, sources, boxes, digests))
        ]
        self._write_crops(dict(zip(ids, crops)))
        self._call(self._client.insert, self._photos, rows)
        self._commit(batch, len(rows), gen, now)
        return ids

    def _commit(self, batch: str, n: int, gen: int, now: float) -> None:
        self._set_meta(f"batch:{batch}", json.dumps({"n": n, "created": now, "gen": gen}))  # the commit
        self._committed[batch] = gen

    def _write_crops(self, crops: dict[int, bytes | None]) -> None:
        rows = [
            {"key": f"{i}:{k}", "photo": i, "part": k, "value": part, "v": [0.0, 0.0]}
            for i, crop in crops.items()
            if crop
            for k, part in enumerate(_parts(crop))
        ]
        if rows:
            self._ensure_crops()
            for k in range(0, len(rows), 64):
                self._call(self._client.insert, self._crops, rows[k : k + 64])

    def _delete_crops(self, ids) -> None:
        ids = [int(i) for i in ids]
        if ids and self._crops in set(self._call(self._client.list_collections)):
            for k in range(0, len(ids), _PAGE):
                self._call(self._client.delete, self._crops, filter=f"photo in {ids[k : k + _PAGE]}")

    def replace_embeddings(self, ids, embeddings, space_id: str) -> None:
        """Re-encode (``gallery migrate``): the rows ``ids`` get ``embeddings`` and the gallery ``space_id``,
        all at once. The new rows (with new photo ids, crops copied, one new batch per enrolment) are
        written under a new generation, the threshold (calibrated for the old space) is dropped, then one meta write
        switches the generation and the space; the old rows are deleted afterwards."""
        emb = check_embeddings(embeddings)
        ids = [int(i) for i in ids]
        if len(ids) != len(emb):
            raise ValueError("one embedding per row id")
        self._writable("re-encode")
        self._require_current()
        meta = self._meta_many(["dim", "space"])
        if self._stored_dim(meta.get("dim")) not in (None, emb.shape[1]):
            raise GalleryError(
                f"the gallery {self.path} holds {meta['dim']}-D embeddings and Milvus cannot change "
                f"a collection's dimension: enrol the people again into a new Milvus gallery"
            )
        _, gen = self._space(meta.get("space"), read=False)
        rows = self._rows(fields=["id", "name", "batch", "info", "created"], gen=gen)
        if sorted(r["id"] for r in rows) != sorted(ids) or len(set(ids)) != len(ids):
            raise GalleryError(f"the gallery {self.path} changed during the migration; run it again")
        new_emb = dict(zip(ids, emb))
        now, new_gen = time.time(), secrets.randbits(48) + 1  # never one that a crashed migration left rows of
        batches = {b: secrets.token_hex(16) for b in sorted({r["batch"] for r in rows})}  # one per enrolment, as before
        new_rows, moved = [], {}
        for k, r in enumerate(rows):
            info = json.loads(r["info"])
            info["pos"] = k  # enrolment order kept: (created, batch, pos)
            new_id = secrets.randbits(62)
            moved[r["id"]] = new_id
            new_rows.append(
                {
                    "id": new_id,
                    "name": r["name"],
                    "batch": batches[r["batch"]],
                    "created": r["created"],
                    "embedding": new_emb[r["id"]],
                    "info": json.dumps(info),
                }
            )
        self._write_crops({moved[i]: self.crop(i) for i in moved})
        for k in range(0, len(new_rows), 1024):
            self._call(self._client.insert, self._photos, new_rows[k : k + 1024])
        for new_batch in batches.values():  # invisible until the switch: they name the new generation
            self._commit(new_batch, sum(r["batch"] == new_batch for r in new_rows), new_gen, now)
        self._set_meta("threshold", None)  # first: a crash from here on leaves no threshold of another space
        self._set_meta("model_id", None)
        self._set_meta("space", json.dumps({"space_id": space_id, "generation": new_gen}))  # the switch
        old_batches = sorted(batches)
        if old_batches:
            self._call(self._client.delete, self._metac, filter=f"key in {_list('batch:' + b for b in old_batches)}")
        if moved:
            self._call(self._client.delete, self._photos, ids=list(moved))
            self._delete_crops(moved)

    def rename(self, old: str, new: str) -> None:
        """Rename a person (all their photos follow)."""
        old, new = normalize_name(old), normalize_name(new)
        self._writable("rename a person in")
        self._require_current()
        if new != old and new in self:
            raise ValueError(f"{display_name(new)} is already enrolled")
        rows = self._rows(name=old, fields=["id", "name", "batch", "info", "created", "embedding"])
        if not rows:
            raise KeyError(self._unknown(old))
        for r in rows:
            r["name"] = new
        self._call(self._client.upsert, self._photos, rows)

    def remove(self, name: str) -> int:
        """Erase a person: their commit markers (they vanish at once), rows and crops; returns how many photos went."""
        name = normalize_name(name)
        self._writable("remove a person from")
        self._require_current()
        rows = self._rows(name=name, fields=["id", "batch"])
        if not rows:
            raise KeyError(self._unknown(name))
        batches = sorted({r["batch"] for r in rows})
        markers = [f"batch:{b}" for b in batches]
        self._call(self._client.delete, self._metac, filter=f"key in {_list(markers)}")  # invisible, batch by batch
        for b in batches:
            self._committed.pop(b, None)
        every = self._rows(name=name, fields=["id"], visible=False)  # with rows of dead writers and old generations
        self._call(self._client.delete, self._photos, filter=f"name == {_lit(name)}")
        self._delete_crops(r["id"] for r in every)
        return len(rows)

    def remove_photo(self, photo_id: int) -> None:
        """Remove one enrolled photo and its crop (a person left with no photo is gone too)."""
        self._writable("remove a photo from")
        self._require_current()
        rows = self._rows(ids=[int(photo_id)], fields=["id"]) if self._has_photos() else []
        if not rows:
            raise KeyError(f"no enrolled photo with id {photo_id} in {self.path}")
        self._call(self._client.delete, self._photos, ids=[int(photo_id)])
        self._delete_crops([int(photo_id)])

    def vacuum(self, older_than: float = 3600.0) -> int:
        """Delete rows (and crops) of enrolments that never committed (a writer died) and are older than
        ``older_than`` seconds (younger ones may be a live writer's), and rows of past generations.
        Returns how many went."""
        self._writable("vacuum")
        if not self._has_photos():
            return 0
        _, gen = self._space()
        rows = self._rows(fields=["id", "batch", "created"], visible=False)
        self._committed_of({r["batch"] for r in rows})
        dead = [
            r["id"]
            for r in rows
            if (r["batch"] not in self._committed and r["created"] < time.time() - older_than)
            or self._committed.get(r["batch"], gen) != gen
        ]
        if dead:
            self._call(self._client.delete, self._photos, ids=dead)
            self._delete_crops(dead)
        return len(dead)

    # ------------------------------------------------------------------ reads
    def _committed_of(self, batches, level: str = "Strong") -> set[str]:
        """Which of these batch ids have their commit marker (cached: a marker only goes with its rows),
        read at consistency ``level``."""
        unknown = [b for b in batches if b not in self._committed]
        for k in range(0, len(unknown), _PAGE):
            found = self._meta_many([f"batch:{b}" for b in unknown[k : k + _PAGE]], level)
            for key, value in found.items():
                try:
                    self._committed[key[6:]] = int(json.loads(value).get("gen", 0))
                except (ValueError, AttributeError):
                    raise GalleryError(
                        f"the gallery {self.path} is damaged: its meta row {key!r} holds {value!r}"
                    ) from None
        return {b for b in batches if b in self._committed}

    def _visible(self, batches, gen: int, level: str = "Strong") -> set[str]:
        return {b for b in self._committed_of(batches, level) if self._committed[b] == gen}

    def _rows(
        self, *, name: str | None = None, ids=None, fields, visible: bool = True, gen: int | None = None
    ) -> list[dict]:
        """Photo rows (all, one person's, or by id), only visible ones (committed, of the current
        generation ``gen``, read when None) unless ``visible=False``, in enrolment order."""
        if not self._has_photos():
            return []
        self._require_current()
        if visible and gen is None:
            gen = self._space()[1]
        fields = list(dict.fromkeys([*fields, "batch", "created", "info", "id"]))
        if ids is not None:
            flt = f"id in {[int(i) for i in ids]}"
        elif name is not None:
            flt = f"name == {_lit(name)}"
        else:
            flt = "id >= 0 or id < 0"
        it = self._call(
            self._client.query_iterator,
            self._photos,
            batch_size=_PAGE,
            filter=flt,
            output_fields=fields,
            consistency_level="Strong",
        )
        rows: list[dict] = []
        while True:
            page = self._call(it.next)
            if not page:
                break
            rows.extend(dict(r) for r in page)
        it.close()
        if visible:
            if gen is None:
                raise GalleryError(f"the Milvus gallery {self.path} has no embedding-space generation recorded")
            ok = self._visible({r["batch"] for r in rows}, gen)
            rows = [r for r in rows if r["batch"] in ok]
        rows.sort(key=lambda r: (r["created"], r["batch"], json.loads(r["info"])["pos"]))
        return rows

    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return sorted(self.people())

    def __len__(self) -> int:
        return len(self.people())

    def __contains__(self, name: str) -> bool:
        try:
            name = normalize_name(name)
        except ValueError:
            return False
        return bool(self._rows(name=name, fields=["id"]))

    def people(self) -> dict[str, int]:
        """Each enrolled name with its number of photos."""
        counts: dict[str, int] = {}
        for r in self._rows(fields=["name"]):
            counts[r["name"]] = counts.get(r["name"], 0) + 1
        return dict(sorted(counts.items()))

    def photos(self, name: str | None = None) -> list[Photo]:
        """The enrolled photos (of one person, or all), in enrolment order."""
        name = None if name is None else normalize_name(name)
        rows = self._rows(name=name, fields=["id", "name", "info"])
        if name is not None and not rows:
            raise KeyError(self._unknown(name))
        out = []
        for r in rows:
            info = json.loads(r["info"])
            out.append(
                Photo(
                    int(r["id"]),
                    r["name"],
                    info["source"],
                    None if info["box"] is None else tuple(float(v) for v in info["box"]),
                    info.get("sha256"),
                )
            )
        return out

    def crop(self, photo_id: int) -> bytes | None:
        """The stored face crop (encoded image bytes) of one photo, or None."""
        if not self._rows(ids=[int(photo_id)], fields=["id"]):
            raise KeyError(f"no enrolled photo with id {photo_id} in {self.path}")
        if self._crops not in set(self._call(self._client.list_collections)):
            return None
        parts = self._call(
            self._client.query,
            self._crops,
            filter=f"photo == {int(photo_id)}",
            output_fields=["part", "value"],
            consistency_level="Strong",
        )
        if not parts:
            return None
        parts.sort(key=lambda r: r["part"])
        return b"".join(base64.b64decode(r["value"]) for r in parts)

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]:
        """All stored embeddings (M, D) float32 and the name of each row (or one person's), in enrolment order."""
        name = None if name is None else normalize_name(name)
        rows = self._rows(name=name, fields=["name", "embedding"])
        if name is not None and not rows:
            raise KeyError(self._unknown(name))
        dim = self._stored_dim(self._meta("dim")) or 0
        emb = np.asarray([r["embedding"] for r in rows], np.float32) if rows else np.zeros((0, dim), np.float32)
        return emb, [r["name"] for r in rows]

    def search(self, queries) -> list[Match]:
        """Per query (Q, D): the nearest identity, its distance and the runner-up (HNSW candidates,
        invisible rows dropped, exact re-rank). Every read here is at the URL's ``?consistency=`` level."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        self._require_current()
        level = self._search_level
        meta = self._meta_many(["dim", "space"], level)  # one round trip: the dimension and the current generation
        dim = self._stored_dim(meta.get("dim"))
        if dim is None or not self._has_photos():
            return [NO_MATCH for _ in q]
        _, gen = self._space(meta.get("space"), read=False)
        if q.shape[1] != dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, but the gallery holds {dim}-D embeddings")
        k = self.options["candidates"]
        params = {"metric_type": "L2", "params": {"ef": max(self.options["ef_search"], k)}}
        hits = self._call(
            self._client.search,
            self._photos,
            data=list(q),
            limit=k,
            anns_field="embedding",
            output_fields=["name", "batch", "embedding"],
            search_params=params,
            consistency_level=level,
        )
        out = []
        for vec, row in zip(q, hits):
            rows = [h["entity"] for h in row]
            ok = self._visible({r["batch"] for r in rows}, gen, level)
            rows = [r for r in rows if r["batch"] in ok]
            if rows and len({r["name"] for r in rows}) == 1:  # one identity only: its runner-up from one more search
                more = self._call(
                    self._client.search,
                    self._photos,
                    data=[vec],
                    limit=k,
                    anns_field="embedding",
                    filter=f"name != {_lit(rows[0]['name'])}",
                    output_fields=["name", "batch", "embedding"],
                    search_params=params,
                    consistency_level=level,
                )[0]
                extra = [h["entity"] for h in more]
                ok = self._visible({r["batch"] for r in extra}, gen, level)
                rows += [r for r in extra if r["batch"] in ok]
            if not rows:
                out.append(NO_MATCH)
                continue
            out.append(rerank(vec, np.asarray([r["embedding"] for r in rows], np.float32), [r["name"] for r in rows]))
        return out

    def _unknown(self, name: str) -> str:
        return unknown_name(self.path, name, self.names())

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is None:
            return
        client.close()
        if self._local:  # milvus-lite keeps the file (and its lock) open until exit unless released
            from milvus_lite import server_manager_instance

            server_manager_instance.release_server(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"MilvusStore({self.path!r})"
