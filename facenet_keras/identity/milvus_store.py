"""The Milvus gallery store: galleries past what one PostgreSQL server holds.

``milvus://[user:password@]host:port[/name]`` talks to a Milvus server or cluster; a local path
ending in ``.milvus.db`` opens it through ``milvus-lite`` (an in-process re-implementation behind
the same pymilvus client, one process per file). The code path is the one a cluster uses.

Two collections per gallery: ``{name}_photos`` (one row per enrolled photo: random int64 id, person
name, enrolment batch id, JSON info with source/box/sha256, time, float32 embedding with an HNSW
index, L2) and ``{name}_meta`` (key/value: schema version, dimension, encoder id, threshold, and one
commit marker per enrolment).

Consistency without multi-row transactions: an enrolment writes its photo rows under a fresh batch
id, THEN one marker row ``batch:<id>``. A row is visible only when its batch's marker exists, and
one row is written atomically, so a writer killed mid-enrolment leaves only invisible rows (cleaned
by :meth:`MilvusStore.vacuum`), never half a person. Reads use Strong consistency (they see every
write acknowledged before them). Removing a person deletes their batches' markers first (each batch
vanishes whole), then the rows. ``rename`` rewrites the person's rows in one upsert request: atomic
in milvus-lite, per-shard on a cluster (a crash mid-rename there can leave rows under both names;
renaming again finishes it). Concurrent writers to one person from several processes need a
Milvus server (milvus-lite locks its file to one process).

Search: the HNSW index proposes ``candidates`` rows at ``ef`` = ``ef_search``; rows of uncommitted
batches are dropped and the rest re-ranked exactly in numpy (the same distance every backend reports).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from urllib.parse import urlsplit

import numpy as np

from facenet_keras.identity.remote import GalleryServerError, check_model, checked_rows, redact, rerank, split_options
from facenet_keras.identity.search import NO_MATCH, Match
from facenet_keras.identity.store import Photo, check_name

SCHEMA_VERSION = 1
# pymilvus warns on every iterator that milvus-lite has no server timestamp (it falls back to the client's).
for _handler in logging.getLogger("pymilvus").handlers or [logging.getLogger("pymilvus")]:
    _handler.addFilter(lambda record: "mvccTs" not in record.getMessage())
OPTIONS = {"ef_search": 100, "candidates": 64, "hnsw_m": 16, "ef_construction": 200}
_NAME_LEN = 1024
_PAGE = 4096


def _lit(text: str) -> str:
    """A string literal for a Milvus filter expression (double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(texts) -> str:
    return "[" + ", ".join(_lit(t) for t in texts) + "]"


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc).strip().splitlines()[-1]


class MilvusStore:
    """Enrolled people and their embeddings in Milvus (see the module docstring)."""

    def __init__(self, url: str, *, backend: str = "exact", timeout: float = 10.0):
        if backend != "exact":
            raise ValueError(f"search backend {backend!r} is for SQLite galleries; Milvus searches with "
                             "its own HNSW index (tune it with ?ef_search=... in the URL)")
        try:
            from pymilvus import DataType, MilvusClient, MilvusException
        except ImportError as exc:
            raise GalleryServerError("Milvus galleries need pymilvus (and milvus-lite for a local *.milvus.db): "
                                     "pip install 'facenet-keras[milvus]'") from exc
        self._DataType, self._MilvusException = DataType, MilvusException
        url, self.options = split_options(url, OPTIONS)
        if url.startswith("milvus://"):
            parts = urlsplit(url)
            prefix = parts.path.strip("/") or "facenet"
            uri = f"http://{parts.hostname}:{parts.port or 19530}"
            token = f"{parts.username}:{parts.password}" if parts.username else ""
            self.path = redact(url)
        else:
            from pathlib import Path

            local = Path(url).expanduser().resolve()
            if not local.name.endswith(".milvus.db"):
                raise ValueError(f"a local Milvus gallery is a path ending in .milvus.db, got {url!r}")
            local.parent.mkdir(parents=True, exist_ok=True)
            uri, token, prefix, self.path = str(local), "", "facenet", str(local)
        self._local = not url.startswith("milvus://")
        if not prefix.replace("_", "").isalnum():
            raise ValueError(f"a Milvus gallery name is letters, digits and _, got {prefix!r}")
        self._photos, self._metac = f"{prefix}_photos", f"{prefix}_meta"
        try:
            self._client = MilvusClient(uri=uri, token=token, timeout=timeout)
        except MilvusException as exc:
            if "local" in _message(exc).lower():
                raise GalleryServerError(f"cannot open {self.path}: milvus-lite could not open it (another process "
                                         "has it open? milvus-lite allows one process per file)") from None
            raise GalleryServerError(f"cannot reach Milvus at {self.path}: {_message(exc)}") from None
        self._committed: set[str] = set()
        self._dim, self._photos_exist = None, False
        self._open_schema()

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
            if version is None:
                raise GalleryServerError(f"{self.path} holds a collection {self._metac!r} that is not a facenet-keras "
                                         "gallery's: name another gallery (milvus://host:port/NAME); nothing was changed")
            if int(version) > SCHEMA_VERSION:
                raise GalleryServerError(f"{self.path} has gallery schema {version}, newer than this version of "
                                         f"facenet-keras reads ({SCHEMA_VERSION}): upgrade facenet-keras")
        else:
            if self._photos in have:
                raise GalleryServerError(f"{self.path} holds a collection {self._photos!r} without gallery metadata: "
                                         "name another gallery; nothing was changed")
            DataType = self._DataType
            schema = c.create_schema(auto_id=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
            schema.add_field("value", DataType.VARCHAR, max_length=65535)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one vector field per collection
            index = c.prepare_index_params()
            index.add_index("v", index_type="FLAT", metric_type="L2")
            self._call(c.create_collection, self._metac, schema=schema, index_params=index,
                       consistency_level="Strong")
            self._call(c.load_collection, self._metac)
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        if self._photos in set(self._call(c.list_collections)):
            self._call(c.load_collection, self._photos)

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
        index.add_index("embedding", index_type="HNSW", metric_type="L2",
                        params={"M": self.options["hnsw_m"], "efConstruction": self.options["ef_construction"]})
        self._call(c.create_collection, self._photos, schema=schema, index_params=index, consistency_level="Strong")
        self._call(c.load_collection, self._photos)

    # ------------------------------------------------------------------ metadata
    def _meta_many(self, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        rows = self._call(self._client.query, self._metac, filter=f"key in {_list(keys)}",
                          output_fields=["key", "value"], consistency_level="Strong")
        return {r["key"]: r["value"] for r in rows}

    def _meta(self, key: str) -> str | None:
        return self._meta_many([key]).get(key)

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._call(self._client.delete, self._metac, filter=f"key == {_lit(key)}")
        else:
            self._call(self._client.upsert, self._metac, [{"key": key, "value": value, "v": [0.0, 0.0]}])

    @property
    def threshold(self) -> float | None:
        value = self._meta("threshold")
        return None if value is None else float(value)

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"threshold must be a positive number, got {value!r}")
        self._set_meta("threshold", None if value is None else repr(float(value)))

    @property
    def model_id(self) -> str | None:
        return self._meta("model_id")

    def _has_photos(self) -> bool:
        if not self._photos_exist:  # once created, the collection stays: no round trip per search
            self._photos_exist = self._photos in set(self._call(self._client.list_collections))
        return self._photos_exist

    # ------------------------------------------------------------------ writes
    def add(self, name: str, embeddings, *, sources=None, boxes=None, model_id: str | None = None,
            hashes=None) -> list[int]:
        """Enrol ``embeddings`` (N, D) for ``name``: rows first, then the one commit marker that makes
        them visible together. Returns the new photo ids."""
        meta = self._meta_many(["dim", "model_id"])
        name, emb, sources, boxes = checked_rows(name, embeddings, sources, boxes, meta.get("dim"))
        if len(name) > _NAME_LEN // 4:
            raise ValueError(f"a name is at most {_NAME_LEN // 4} characters here")
        check_model(meta.get("model_id"), model_id)
        hashes = list(hashes) if hashes is not None else [None] * len(emb)
        if "dim" not in meta:
            if not self._has_photos():
                self._create_photos(emb.shape[1])
            self._set_meta("dim", str(emb.shape[1]))
        if model_id is not None and "model_id" not in meta:
            self._set_meta("model_id", model_id)
        batch, now = secrets.token_hex(16), time.time()
        ids = [secrets.randbits(62) for _ in emb]
        rows = [{"id": i, "name": name, "batch": batch, "created": now, "embedding": vec,
                 "info": json.dumps({"pos": k, "source": src, "sha256": sha,
                                     "box": None if box is None else [float(v) for v in box]})}
                for k, (i, vec, src, box, sha) in enumerate(zip(ids, emb, sources, boxes, hashes))]
        self._call(self._client.insert, self._photos, rows)
        self._set_meta(f"batch:{batch}", json.dumps({"n": len(rows), "created": now}))  # the commit
        self._committed.add(batch)
        return ids

    def rename(self, old: str, new: str) -> None:
        new = check_name(new)
        if new != old and new in self:
            raise ValueError(f"{new!r} is already enrolled")
        rows = self._rows(name=old, fields=["id", "name", "batch", "info", "created", "embedding"])
        if not rows:
            raise KeyError(self._unknown(old))
        for r in rows:
            r["name"] = new
        self._call(self._client.upsert, self._photos, rows)

    def remove(self, name: str) -> int:
        rows = self._rows(name=name, fields=["id", "batch"])
        if not rows:
            raise KeyError(self._unknown(name))
        batches = sorted({r["batch"] for r in rows})
        markers = [f"batch:{b}" for b in batches]
        self._call(self._client.delete, self._metac, filter=f"key in {_list(markers)}")  # invisible, batch by batch
        self._committed -= set(batches)
        self._call(self._client.delete, self._photos, filter=f"name == {_lit(name)}")
        return len(rows)

    def remove_photo(self, photo_id: int) -> None:
        rows = self._rows(ids=[int(photo_id)], fields=["id"]) if self._has_photos() else []
        if not rows:
            raise KeyError(f"no enrolled photo with id {photo_id}")
        self._call(self._client.delete, self._photos, ids=[int(photo_id)])

    def vacuum(self, older_than: float = 3600.0) -> int:
        """Delete rows of enrolments that never committed (a writer died) and are older than
        ``older_than`` seconds (younger ones may be a live writer's). Returns how many went."""
        if not self._has_photos():
            return 0
        rows = self._rows(fields=["id", "batch", "created"], visible=False)
        committed = self._committed_of({r["batch"] for r in rows})
        dead = [r["id"] for r in rows if r["batch"] not in committed and r["created"] < time.time() - older_than]
        if dead:
            self._call(self._client.delete, self._photos, ids=dead)
        return len(dead)

    # ------------------------------------------------------------------ reads
    def _committed_of(self, batches) -> set[str]:
        """Which of these batch ids have their commit marker (cached: a marker only goes with its rows)."""
        unknown = [b for b in batches if b not in self._committed]
        for k in range(0, len(unknown), _PAGE):
            found = self._meta_many([f"batch:{b}" for b in unknown[k:k + _PAGE]])
            self._committed.update(key[6:] for key in found)
        return {b for b in batches if b in self._committed}

    def _rows(self, *, name: str | None = None, ids=None, fields, visible: bool = True) -> list[dict]:
        """Photo rows (all, one person's, or by id), only committed ones unless ``visible=False``,
        in enrolment order."""
        if not self._has_photos():
            return []
        fields = list(dict.fromkeys([*fields, "batch", "created", "info", "id"]))
        if ids is not None:
            flt = f"id in {[int(i) for i in ids]}"
        elif name is not None:
            flt = f"name == {_lit(name)}"
        else:
            flt = "id >= 0 or id < 0"
        it = self._call(self._client.query_iterator, self._photos, batch_size=_PAGE, filter=flt,
                        output_fields=fields, consistency_level="Strong")
        rows = []
        while True:
            page = self._call(it.next)
            if not page:
                break
            rows.extend(dict(r) for r in page)
        it.close()
        if visible:
            ok = self._committed_of({r["batch"] for r in rows})
            rows = [r for r in rows if r["batch"] in ok]
        rows.sort(key=lambda r: (r["created"], r["batch"], json.loads(r["info"])["pos"]))
        return rows

    def names(self) -> list[str]:
        return sorted(self.people())

    def __len__(self) -> int:
        return len(self.people())

    def __contains__(self, name: str) -> bool:
        return bool(self._rows(name=name, fields=["id"]))

    def people(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._rows(fields=["name"]):
            counts[r["name"]] = counts.get(r["name"], 0) + 1
        return dict(sorted(counts.items()))

    def photos(self, name: str | None = None) -> list[Photo]:
        rows = self._rows(name=name, fields=["id", "name", "info"])
        if name is not None and not rows:
            raise KeyError(self._unknown(name))
        out = []
        for r in rows:
            info = json.loads(r["info"])
            out.append(Photo(int(r["id"]), r["name"], info["source"],
                             None if info["box"] is None else tuple(info["box"])))
        return out

    def photo_hashes(self) -> dict[int, str]:
        """Photo id -> the photo file's sha256, where one was given at enrolment."""
        pairs = ((int(r["id"]), json.loads(r["info"]).get("sha256")) for r in self._rows(fields=["id", "info"]))
        return {i: h for i, h in pairs if h}

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]:
        rows = self._rows(name=name, fields=["name", "embedding"])
        if name is not None and not rows:
            raise KeyError(self._unknown(name))
        dim = int(self._meta("dim") or 0)
        emb = (np.asarray([r["embedding"] for r in rows], np.float32) if rows else np.zeros((0, dim), np.float32))
        return emb, [r["name"] for r in rows]

    def search(self, queries) -> list[Match]:
        """Per query (Q, D): the nearest identity, its distance and the runner-up (HNSW candidates,
        uncommitted rows dropped, exact re-rank)."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        dim = self._dim or self._meta("dim")
        if dim is None or not self._has_photos():
            return [NO_MATCH for _ in q]
        self._dim = dim  # fixed once set
        if q.shape[1] != int(dim):
            raise ValueError(f"queries have dimension {q.shape[1]}, but the gallery holds {dim}-D embeddings")
        k = self.options["candidates"]
        params = {"metric_type": "L2", "params": {"ef": max(self.options["ef_search"], k)}}
        hits = self._call(self._client.search, self._photos, data=list(q), limit=k, anns_field="embedding",
                          output_fields=["name", "batch", "embedding"], search_params=params,
                          consistency_level="Strong")
        out = []
        for vec, row in zip(q, hits):
            rows = [h["entity"] for h in row]
            ok = self._committed_of({r["batch"] for r in rows})
            rows = [r for r in rows if r["batch"] in ok]
            if rows and len({r["name"] for r in rows}) == 1:  # one identity only: its runner-up from one more search
                more = self._call(self._client.search, self._photos, data=[vec], limit=k, anns_field="embedding",
                                  filter=f"name != {_lit(rows[0]['name'])}",
                                  output_fields=["name", "batch", "embedding"], search_params=params,
                                  consistency_level="Strong")[0]
                extra = [h["entity"] for h in more]
                ok = self._committed_of({r["batch"] for r in extra})
                rows += [r for r in extra if r["batch"] in ok]
            if not rows:
                out.append(NO_MATCH)
                continue
            out.append(rerank(vec, np.asarray([r["embedding"] for r in rows], np.float32), [r["name"] for r in rows]))
        return out

    def _unknown(self, name: str) -> str:
        names = self.names()
        listed = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "") if names else "nobody yet"
        return f"{name!r} is not enrolled in {self.path} (enrolled: {listed})"

    def close(self) -> None:
        self._client.close()
        if self._local:  # milvus-lite keeps the file (and its lock) open until exit unless released
            from milvus_lite import server_manager_instance

            server_manager_instance.release_server(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"MilvusStore({self.path!r})"
