"""Issue 11 (trustworthy answers), the library side: one test per numbered item, named after it.

Items: 1 embedding-space check and migration from stored crops; 3 names; 4 enrolment choices,
duplicates, look-alikes and reference quality; 5 pinned weight digests; 6 private files and erasure;
7 read-only opening and foreign databases; 8 SQLite failures as one-line errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat

import numpy as np
import pytest
from PIL import Image, ImageFilter

import facenet_keras as fk
from facenet_keras.demo import changed_copy, sample_portraits, side_by_side


@pytest.fixture(scope="module")
def portrait_files(tmp_path_factory):
    """Grace Hopper and Eileen Collins (public domain) as files, plus a changed copy of Grace."""
    folder = tmp_path_factory.mktemp("portraits")
    people = sample_portraits()
    out = {}
    for key, image in [
        ("grace", people["Grace Hopper"]),
        ("eileen", people["Eileen Collins"]),
        ("grace2", changed_copy(people["Grace Hopper"])),
    ]:
        out[key] = folder / f"{key}.jpg"
        Image.fromarray(image).save(out[key], quality=95)
    return out


@pytest.fixture(scope="module")
def normalized_encoder(encoder):
    """The same weights with L2-normalised outputs: another embedding space."""
    from facenet_keras.models.encoder import load_encoder

    return load_encoder(normalize=True)


def _tree(folder) -> dict:
    """Every file under ``folder``: relative path -> (mode, sha256 of its bytes)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = (
                    stat.S_IMODE(os.stat(p).st_mode),
                    hashlib.sha256(f.read()).hexdigest(),
                )
    return out


# ------------------------------------------------------------------------------------ item 1
def test_item1_gallery_refuses_another_embedding_space(portrait_files, tmp_path, detector, normalized_encoder):
    from facenet_keras.identity.stores.base import EmbeddingSpaceError

    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("grace", portrait_files["grace"], detector=detector)
        stored = g.space_id
        assert stored == fk.faces.pipeline.embedding_space_id(None)
        with pytest.raises(EmbeddingSpaceError) as err:
            fk.verify(portrait_files["grace2"], "grace", g, threshold=0.4, model=normalized_encoder, detector=detector)
        message = str(err.value)
        assert stored in message and fk.faces.pipeline.embedding_space_id(normalized_encoder) in message
        assert "gallery migrate" in message
        with pytest.raises(EmbeddingSpaceError):
            fk.recognize(portrait_files["grace2"], g, threshold=0.4, model=normalized_encoder, detector=detector)
        with pytest.raises(EmbeddingSpaceError):
            g.enroll("eileen", portrait_files["eileen"], model=normalized_encoder, detector=detector)
        assert g.names() == ["grace"]


def test_item1_space_ignores_detector_settings(monkeypatch, encoder):
    from facenet_keras.faces import detection, pipeline

    before_space, before_cache = pipeline.embedding_space_id(None), pipeline.pipeline_id(None)
    monkeypatch.setattr(detection, "DEFAULT_MIN_FACE_SIZE", detection.DEFAULT_MIN_FACE_SIZE + 20)
    monkeypatch.setattr(detection, "DEFAULT_MIN_CONFIDENCE", 0.95)
    assert pipeline.embedding_space_id(None) == before_space  # a detector setting strands no gallery
    assert pipeline.pipeline_id(None) != before_cache  # while caches still key on it
    assert pipeline.embedding_space_id(None, flip=False) != before_space
    assert pipeline.embedding_space_id(None, alignment="mtcnn") != before_space


def test_item1_migrate_reencodes_from_stored_crops(portrait_files, tmp_path, detector, encoder, normalized_encoder):
    path = tmp_path / "g.sqlite"
    with fk.FaceGallery(path) as g:
        g.enroll("grace", portrait_files["grace"], detector=detector)
        g.enroll("eileen", portrait_files["eileen"], detector=detector)
        g.threshold = 0.55
        raw, labels = g.embeddings()
        report = g.migrate(model=normalized_encoder, detector=detector)
        assert report["re_encoded"] == 2 and report["threshold_dropped"] == pytest.approx(0.55)
        assert g.threshold is None  # it belonged to the old space
        assert g.space_id == fk.faces.pipeline.embedding_space_id(normalized_encoder)
        new, new_labels = g.embeddings()
        assert new_labels == labels
        # the crops give back the faces: the re-encoded embeddings are the normalised originals, nearly
        expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        assert np.linalg.norm(new - expected, axis=1).max() < 0.1
        v = fk.verify(portrait_files["grace2"], "grace", g, threshold=0.45, model=normalized_encoder, detector=detector)
        assert v.match
        # and back: the pretrained space again, within a small distance of the first enrolment
        assert g.migrate(detector=detector)["re_encoded"] == 2
        assert np.linalg.norm(g.embeddings()[0] - raw, axis=1).max() < 0.15


def _schema1_gallery(path, model_id: str) -> np.ndarray:
    """A gallery as facenet-keras 0.2 wrote it (schema 1, pipeline id in meta 'model_id', no crops)."""
    emb = np.random.default_rng(0).normal(size=(1, 128)).astype(np.float32) * 0.1
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
        CREATE TABLE photos (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id)
            ON DELETE CASCADE, source TEXT, box TEXT, embedding BLOB NOT NULL, created REAL NOT NULL);""")
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "1"), ("dim", "128"), ("model_id", model_id)])
    db.execute("INSERT INTO people VALUES (1, 'ada', 0)")
    db.execute("INSERT INTO photos VALUES (1, 1, 'ada.jpg', NULL, ?, 0)", (emb[0].tobytes(),))
    db.commit()
    db.close()
    return emb


def test_item1_old_galleries_migrate_or_are_refused(tmp_path, encoder, portrait_files, detector):
    from facenet_keras.faces.pipeline import embedding_space_id, pipeline_id
    from facenet_keras.identity.stores.base import GalleryError

    same = tmp_path / "same.sqlite"
    emb = _schema1_gallery(same, pipeline_id(None))
    with fk.FaceGallery(same, readonly=True) as g, pytest.raises(GalleryError, match="gallery migrate"):
        fk.recognize(portrait_files["grace"], g, detector=detector)
    with fk.FaceGallery(same) as g:
        report = g.migrate()
        assert report["schema_upgraded"] and report["re_encoded"] == 0
        assert g.space_id == embedding_space_id(None)
        np.testing.assert_array_equal(g.embeddings()[0], emb)  # the same pipeline: embeddings kept

    other = tmp_path / "other.sqlite"
    _schema1_gallery(other, "dlib_resnet_v1|align-dlib-0123456789|flip=1")
    before = _tree(tmp_path)
    with fk.FaceGallery(other) as g, pytest.raises(GalleryError, match="enrol its people again"):
        g.migrate()
    assert _tree(tmp_path) == before  # refused untouched


# ------------------------------------------------------------------------------------ item 3
def test_item3_names_have_one_spelling_everywhere(tmp_path, portrait_files, detector):
    from facenet_keras.identity.stores.base import display_name

    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.add("  Amy Adams  ", np.ones((1, 4), np.float32))
        g.add("Ame\u0301lie", np.zeros((1, 4), np.float32))  # decomposed e + accent
        assert g.names() == ["Amy Adams", "Am\u00e9lie"]
        assert "  Amy Adams" in g and g.people()["Amy Adams"] == 1
        g.add("Amy Adams ", np.ones((1, 4), np.float32))  # the same person, not a second one
        assert g.people() == {"Amy Adams": 2, "Am\u00e9lie": 1}
        for bad in ["Eve\nMallory", "Eve\x1b[2J", "Ev\u200de", "", "   ", "x" * 201]:
            with pytest.raises(ValueError):
                g.add(bad, np.ones((1, 4), np.float32))
        g.rename(" Amy Adams", "Amy  Adams ")
        assert sorted(g.names()) == ["Amy  Adams", "Am\u00e9lie"]
        assert g.remove(" Amy  Adams") == 2
        with pytest.raises(ValueError):
            g.rename("Am\u00e9lie", "Am\u00e9lie\u2028second line")
    assert display_name("a\x1b[2Jb\nc") == "'a\\x1b[2Jb\\nc'"
    with fk.FaceGallery(tmp_path / "v.sqlite") as g:
        g.enroll("  Grace Hopper ", portrait_files["grace"], detector=detector)
        assert fk.verify(portrait_files["grace2"], "Grace Hopper  ", g, detector=detector).match


# ------------------------------------------------------------------------------------ item 4
def test_item4_enrolment_says_which_face_and_refuses_doubtful_photos(tmp_path, portrait_files, detector):
    people = sample_portraits()
    grace, eileen = people["Grace Hopper"], people["Eileen Collins"]
    group = side_by_side(eileen, grace, height=400)
    with fk.FaceGallery(tmp_path / "group.sqlite") as g:
        with pytest.raises(ValueError, match="shows 2 faces.*--face"):
            g.enroll("grace", group, detector=detector)
        assert len(g) == 0 and not (tmp_path / "group.sqlite").exists()  # nothing, not even an empty file
        first = g.enroll("someone", group, face="largest", detector=detector)
        assert first.faces[0]["faces_found"] == 2 and first.faces[0]["face"] == 0
        with pytest.raises(ValueError, match="index 2 does not exist"):
            g.enroll("someone", group, face=2, detector=detector)
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        r = g.enroll("grace", portrait_files["grace"], detector=detector)
        assert len(r.ids) == 1 and r.warnings == []
        again = g.enroll("grace", [portrait_files["grace"]], detector=detector)  # same sha256
        assert again.ids == [] and again.duplicates == [str(portrait_files["grace"])]
        assert g.people()["grace"] == 1
        look = g.enroll("hopper", portrait_files["grace2"], detector=detector)
        assert look.ids and any("'grace'" in w for w in look.warnings)
        # a tiny face and a blurred face are refused as references unless forced
        small = np.asarray(Image.fromarray(grace).resize((grace.shape[1] // 14, grace.shape[0] // 14)))
        small = np.pad(small, ((40, 40), (40, 40), (0, 0)), mode="edge")
        with pytest.raises(ValueError, match="too small"):
            g.enroll("tiny", small, detector=detector)
        blurred = np.asarray(Image.fromarray(grace).filter(ImageFilter.GaussianBlur(8)))
        with pytest.raises(ValueError, match="low quality: sharpness"):
            g.enroll("blurred", blurred, detector=detector)
        assert "tiny" not in g and "blurred" not in g
        assert g.enroll("blurred", blurred, force=True, detector=detector).ids


def test_item4_quality_limits_accept_lfw_photos_and_150px_chips(shared_data, tmp_path, detector):
    """The limits were set from measurement: a face in a 250x250 LFW photo and a 150x150 chip enrol."""
    lfw = sorted((shared_data / "lfw-dev" / "images").glob("*/*.jpg"))[::90][:6]
    chips = sorted(p for p in (shared_data / "faces").glob("bbt_*/*") if Image.open(p).size == (150, 150))[::15][:6]
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        for i, photo in enumerate(lfw + chips):
            g.enroll(f"person {i}", photo, face="centre", detector=detector)
        assert len(g) == len(lfw) + len(chips)


# ------------------------------------------------------------------------------------ item 5
def test_item5_planted_weights_with_rewritten_sidecar_are_refused(tmp_path, monkeypatch):
    from facenet_keras.weights import cache

    source = tmp_path / "model.dat"
    source.write_bytes(b"the source package's weights")
    builds = []

    def build(src, out):
        builds.append(out)
        np.savez(out, conv=np.arange(12, dtype=np.float32).reshape(3, 4), bias=np.ones(4, np.float32))

    folder = tmp_path / "cache"
    target = cache.cached_file("w.npz", source, build, tag="test/1", directory=folder)
    monkeypatch.setitem(cache.PINNED, "test/1", {cache.sha256_file(source): cache.array_digest(target)})
    assert cache.cached_file("w.npz", source, build, tag="test/1", directory=folder) == target
    assert len(builds) == 1  # a file with the pinned arrays is used as it is
    # plant: other arrays, and the sidecar rewritten so that its checksum matches the planted file
    np.savez(target, conv=np.zeros((3, 4), np.float32), bias=np.ones(4, np.float32))
    sidecar = target.with_name(target.name + ".json")
    record = json.loads(sidecar.read_text())
    record["sha256"] = cache.sha256_file(target)
    sidecar.write_text(json.dumps(record))
    assert cache.is_valid(target, cache.sha256_file(source), "test/1")  # the sidecar alone would trust it
    cache.cached_file("w.npz", source, build, tag="test/1", directory=folder)
    assert len(builds) == 2  # refused and rebuilt
    with np.load(target) as z:
        np.testing.assert_array_equal(z["conv"], np.arange(12, dtype=np.float32).reshape(3, 4))


def test_item5_the_installed_weights_are_pinned():
    """The pins match what this code makes of the installed package's files."""
    from facenet_keras.models.dlib_resnet import _pretrained_weights_file
    from facenet_keras.weights import cache, dlib_resnet_dat_path
    from facenet_keras.weights.dlib_shape_predictor import load_shape_predictor_arrays, shape_predictor_dat_path

    load_shape_predictor_arrays()
    pins = cache.PINNED["shape-predictor-npz-1"]
    source = shape_predictor_dat_path()
    assert cache.array_digest(cache.cache_dir() / f"{source.stem}.npz") == pins[cache.sha256_file(source)]
    pins = cache.PINNED["dlib_resnet/1"]
    assert cache.array_digest(_pretrained_weights_file()) == pins[cache.sha256_file(dlib_resnet_dat_path())]


def test_item5_conversion_that_misses_the_pin_is_an_error(tmp_path, monkeypatch):
    from facenet_keras.weights import cache

    source = tmp_path / "source.bin"
    source.write_bytes(b"weights v1")
    monkeypatch.setitem(cache.PINNED, "test/1", {cache.sha256_file(source): "0" * 64})
    with pytest.raises(cache.WeightsIntegrityError, match="pinned"):
        cache.cached_file(
            "w.npz", source, lambda s, o: np.savez(o, a=np.ones(3)), tag="test/1", directory=tmp_path / "cache"
        )
    assert not list((tmp_path / "cache").glob("w.npz*"))


# ------------------------------------------------------------------------------------ item 6
def test_item6_private_gallery_and_erasure_leaves_nothing(tmp_path, portrait_files, detector, monkeypatch):
    from facenet_keras.evaluation.embedding_cache import EmbeddingCache
    from facenet_keras.evaluation.protocols import primary_embeddings, primary_namespace
    from facenet_keras.faces.pipeline import pipeline_id
    from facenet_keras.weights.cache import cache_dir

    monkeypatch.setenv("FACENET_KERAS_HOME", str(tmp_path / "home"))
    assert stat.S_IMODE(cache_dir().stat().st_mode) == 0o700
    folder = tmp_path / "data" / "facenet-keras"
    path = folder / "gallery.sqlite"
    with fk.FaceGallery(path) as g:
        g.enroll("grace", portrait_files["grace"], detector=detector)
        g.enroll("eileen", portrait_files["eileen"], detector=detector)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        db = sqlite3.connect(path)  # a write in progress: the journal is private too
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE meta SET value = value WHERE key = 'dim'")
        db.execute("INSERT INTO meta VALUES ('x', ?)", ("y" * 5000,))
        journal = folder / "gallery.sqlite-journal"
        assert journal.exists() and stat.S_IMODE(journal.stat().st_mode) == 0o600
        db.rollback()
        db.close()
        # the evaluation cache holds embeddings of the same photos
        cache = EmbeddingCache(primary_namespace(pipeline_id(None)))
        cached, _ = primary_embeddings(
            [portrait_files["grace"], portrait_files["eileen"]], cache=cache, detector=detector, progress=False
        )
        grace_rows = [p.id for p in g.photos("grace")]
        grace_emb = g.embeddings("grace")[0][0].tobytes()
        eileen_emb = g.embeddings("eileen")[0][0].tobytes()
        grace_crop, eileen_crop = g.store.crop(grace_rows[0]), g.store.crop(g.photos("eileen")[0].id)
        assert grace_crop[:2] == b"\xff\xd8" and len(grace_crop) < 60_000  # a small JPEG
        g.remove("grace")

    def everything() -> bytes:
        blobs = []
        for root in (folder, tmp_path / "home"):
            for dirpath, _, files in os.walk(root):
                for name in files:
                    with open(os.path.join(dirpath, name), "rb") as f:
                        blobs.append(f.read())
        return b"".join(blobs)

    data = everything()

    def middle(jpeg: bytes) -> bytes:  # image data, not the headers every JPEG shares
        return jpeg[len(jpeg) // 2 : len(jpeg) // 2 + 64]

    for gone in (grace_emb, cached[0].tobytes(), middle(grace_crop), b"grace.jpg"):
        assert gone not in data
    for kept in (eileen_emb, cached[1].tobytes(), middle(eileen_crop)):  # the search can find what is there
        assert kept in data


# ------------------------------------------------------------------------------------ item 7
def test_item7_read_only_opening_creates_and_changes_nothing(tmp_path):
    from facenet_keras.identity.stores.base import GalleryError

    with pytest.raises(GalleryError, match="no gallery at"):
        fk.FaceGallery(tmp_path / "typo" / "gallery.sqlite", readonly=True)
    assert list(tmp_path.iterdir()) == []
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.add("ada", np.ones((1, 4), np.float32), space_id="s")
    before = _tree(tmp_path)
    with fk.FaceGallery(tmp_path / "g.sqlite", readonly=True) as g:
        assert g.names() == ["ada"] and g.search(np.ones(4, np.float32))[0].identity == "ada"
        with pytest.raises(GalleryError, match="read-only"):
            g.add("bob", np.ones((1, 4), np.float32))
    assert _tree(tmp_path) == before
    foreign = tmp_path / "notes.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()
    before = _tree(tmp_path)
    for readonly in (True, False):
        with pytest.raises(GalleryError, match="not a facenet-keras gallery.*untouched"):
            fk.FaceGallery(foreign, readonly=readonly)
    assert _tree(tmp_path) == before


# ------------------------------------------------------------------------------------ item 8
def test_item8_sqlite_failures_are_one_line_errors(tmp_path, monkeypatch):
    from facenet_keras.identity.stores import sqlite as sqlite_store
    from facenet_keras.identity.stores.base import GalleryError

    path = tmp_path / "g.sqlite"
    with fk.FaceGallery(path) as g:
        g.add("ada", np.ones((1, 4), np.float32), space_id="s")
    # disk full: SQLite's own SQLITE_FULL (page limit reached), not "cannot rollback"
    before = _tree(tmp_path)
    with fk.FaceGallery(path) as g:
        g.store._db.execute(f"PRAGMA max_page_count = {g.store._db.execute('PRAGMA page_count').fetchone()[0]}")
        with pytest.raises(GalleryError, match="no space left") as err:
            g.add("bob", np.ones((1, 4), np.float32), crops=[b"x" * 200_000])
        assert "rollback" not in str(err.value) and "\n" not in str(err.value)
    assert _tree(tmp_path) == before
    # locked: another process holds the write lock past the busy timeout
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(GalleryError, match="locked by another process"), fk.FaceGallery(path) as g:
        g.add("bob", np.ones((1, 4), np.float32))
    other.execute("ROLLBACK")
    other.close()
    # a failed first write leaves no gallery file behind
    fresh = tmp_path / "new" / "g.sqlite"
    with fk.FaceGallery(fresh) as g, pytest.raises(ValueError):
        g.add("bob", np.full((1, 4), np.nan, np.float32))
    with fk.FaceGallery(fresh) as g, pytest.raises(ValueError):
        g.add("bob", np.ones((1, 4), np.float32), crops=[b"x"], digests=[None, None])
    assert not fresh.exists()
    # corrupt stored values name the gallery and the row
    db = sqlite3.connect(path)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('threshold', 'not a number')")
    db.execute("UPDATE photos SET embedding = x'0000' WHERE id = 1")
    db.commit()
    db.close()
    with fk.FaceGallery(path, readonly=True) as g:
        with pytest.raises(GalleryError, match=f"{path}.*'threshold'.*'not a number'"):
            g.threshold
        with pytest.raises(GalleryError, match=f"{path}.*photo row 1.*2 bytes"):
            g.embeddings()
