"""The gallery: persistence, enrolment bookkeeping, search with runner-up, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.identity.gallery import FaceGallery
from facenet_keras.identity.search import ExactIndex, FaissIndex


def _unit(rng, n, d=128):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def gallery(tmp_path):
    g = FaceGallery(tmp_path / "g.sqlite")
    yield g
    g.close()


def test_add_persist_and_reopen(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "sub" / "gallery.sqlite"
    with FaceGallery(path) as g:
        g.add("ada", _unit(rng, 2), sources=["a1.jpg", "a2.jpg"])
        g.add("bob", _unit(rng, 1))
        g.threshold = 0.55
    with FaceGallery(path) as g:
        assert g.names() == ["ada", "bob"]
        assert g.people() == {"ada": 2, "bob": 1}
        assert [p.source for p in g.photos("ada")] == ["a1.jpg", "a2.jpg"]
        assert g.threshold == pytest.approx(0.55)
        emb, labels = g.embeddings()
        assert emb.shape == (3, 128) and labels == ["ada", "ada", "bob"]


def test_search_nearest_and_runner_up(gallery):
    rng = np.random.default_rng(1)
    people = {name: _unit(rng, 3) for name in ["a", "b", "c"]}
    for name, emb in people.items():
        gallery.add(name, emb)
    probe = people["b"][1] + 0.01 * rng.normal(size=128).astype(np.float32)
    (m,) = gallery.search(probe)
    assert m.identity == "b"
    assert m.distance == pytest.approx(np.linalg.norm(probe - people["b"][1]), rel=1e-4)
    others = {n: np.linalg.norm(e - probe, axis=1).min() for n, e in people.items() if n != "b"}
    assert m.runner_up == min(others, key=others.get)
    assert m.runner_up_distance == pytest.approx(min(others.values()), rel=1e-4)


def test_single_person_has_no_runner_up(gallery):
    gallery.add("solo", np.ones((2, 4), np.float32))
    (m,) = gallery.search(np.zeros(4, np.float32))
    assert m.identity == "solo" and m.runner_up is None and m.runner_up_distance == np.inf


def test_empty_gallery_search(gallery):
    (m,) = gallery.search(np.zeros(128, np.float32))
    assert m.identity is None and m.distance == np.inf


def test_rename_remove_and_errors(gallery):
    rng = np.random.default_rng(2)
    gallery.add("ada", _unit(rng, 2))
    gallery.add("bob", _unit(rng, 1))
    gallery.rename("ada", "ada lovelace")
    assert gallery.names() == ["ada lovelace", "bob"]
    with pytest.raises(ValueError, match="already enrolled"):
        gallery.rename("bob", "ada lovelace")
    with pytest.raises(KeyError, match="not enrolled"):
        gallery.rename("nobody", "x")
    first = gallery.photos("ada lovelace")[0].id
    gallery.remove_photo(first)
    assert gallery.people()["ada lovelace"] == 1
    assert gallery.remove("ada lovelace") == 1
    assert gallery.names() == ["bob"]
    gallery.remove_photo(gallery.photos("bob")[0].id)  # last photo: the person goes too
    assert len(gallery) == 0
    with pytest.raises(ValueError, match="dimension|D embeddings"):
        gallery.add("x", np.zeros((1, 128), np.float32))
        gallery.add("y", np.zeros((1, 64), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        gallery.add("z", np.full((1, 128), np.nan, np.float32))
    with pytest.raises(ValueError, match="name"):
        gallery.add("  ", np.zeros((1, 128), np.float32))


def test_interrupted_write_leaves_gallery_as_it_was(gallery, monkeypatch):
    rng = np.random.default_rng(3)
    gallery.add("ada", _unit(rng, 1))
    before = gallery.embeddings()[0].copy()

    class Boom(KeyboardInterrupt):
        pass

    calls = {"n": 0}
    real_dumps = __import__("json").dumps

    def exploding_dumps(obj, *a, **k):  # fails on the 2nd photo of the batch, mid-transaction
        calls["n"] += 1
        if calls["n"] == 2:
            raise Boom()
        return real_dumps(obj, *a, **k)

    monkeypatch.setattr("facenet_keras.identity.stores.sqlite.json.dumps", exploding_dumps)
    with pytest.raises(Boom):
        gallery.add("bob", _unit(rng, 3), boxes=[(0, 0, 1, 1)] * 3)
    monkeypatch.undo()
    assert gallery.names() == ["ada"]
    np.testing.assert_array_equal(gallery.embeddings()[0], before)
    gallery.add("bob", _unit(rng, 1))  # the database is still writable
    assert gallery.names() == ["ada", "bob"]


def test_model_mismatch_refused(gallery):
    gallery.add("ada", np.zeros((1, 8), np.float32), model_id="enc-A")
    with pytest.raises(ValueError, match="enc-A"):
        gallery.add("bob", np.zeros((1, 8), np.float32), model_id="enc-B")


def test_not_a_gallery_file(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("this is not a database " * 100)
    with pytest.raises(ValueError, match="not a facenet-keras gallery"):
        FaceGallery(bad)


def test_other_process_changes_are_seen(tmp_path):
    path = tmp_path / "g.sqlite"
    a, b = FaceGallery(path), FaceGallery(path)
    a.add("ada", np.ones((1, 4), np.float32))
    assert b.search(np.ones(4, np.float32))[0].identity == "ada"
    a.add("bob", np.zeros((1, 4), np.float32))
    assert b.search(np.zeros(4, np.float32))[0].identity == "bob"
    a.close(), b.close()


def test_faiss_matches_exact():
    rng = np.random.default_rng(4)
    emb, q = _unit(rng, 500), _unit(rng, 20)
    d1, i1 = ExactIndex(emb).search(q, 5)
    d2, i2 = FaissIndex(emb).search(q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, atol=1e-4)
    brute = np.linalg.norm(q[:, None] - emb[None], axis=2)
    np.testing.assert_allclose(d1[:, 0], brute.min(1), atol=1e-5)
    d3, i3 = ExactIndex(emb[:2]).search(q, 4)  # k larger than the gallery: padded
    assert (i3[:, 2:] == -1).all() and np.isinf(d3[:, 2:]).all()
