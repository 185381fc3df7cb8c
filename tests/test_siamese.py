"""The Siamese binary head: its features, its probabilities, and on real face embeddings of unseen people."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.training.siamese import (  # noqa: E402
    SiameseClassifier,
    brier_score,
    expected_calibration_error,
    pair_features,
)


def test_pair_features_match_formulas_and_are_symmetric():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 16)).astype("float32")
    np.testing.assert_allclose(np.asarray(pair_features(a, b, "abs")), np.abs(a - b), rtol=1e-6)
    chi = np.asarray(pair_features(a, b, "chi2"))
    np.testing.assert_allclose(chi, (a - b) ** 2 / (np.abs(a + b) + 1e-6), rtol=1e-4)
    # non-negative inputs: exactly DeepFace's chi-square (f1 - f2)^2 / (f1 + f2)
    pa, pb = np.abs(a) + 0.1, np.abs(b) + 0.1
    np.testing.assert_allclose(np.asarray(pair_features(pa, pb, "chi2")), (pa - pb) ** 2 / (pa + pb), rtol=1e-4)
    for kind in ("abs", "chi2"):
        np.testing.assert_allclose(np.asarray(pair_features(a, b, kind)), np.asarray(pair_features(b, a, kind)))
    with pytest.raises(ValueError):
        pair_features(a, b, "cosine")


def test_calibration_metrics():
    y = np.array([1, 0, 1, 0])
    assert brier_score(y, y) == 0.0
    assert brier_score(np.full(4, 0.5), y) == pytest.approx(0.25)
    assert expected_calibration_error(np.full(4, 0.5), y) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([0.9, 0.9, 0.9, 0.9]), y) == pytest.approx(0.4)


def _crops_by_identity(root):
    """The 150x150 tight crops of faces/ (already face chips), by identity: no detector needed."""
    from PIL import Image

    from facenet_keras.images import load_image

    chips, names = [], []
    for path in sorted(root.glob("*/*")):
        if path.suffix.lower() not in (".jpg", ".png", ".jpeg", ".webp"):
            continue
        with Image.open(path) as im:
            if im.size != (150, 150):
                continue
        chips.append(load_image(path))
        names.append(path.parent.name)
    return np.stack(chips), np.array(names)


@pytest.fixture(scope="module")
def crop_embeddings(shared_data, encoder):
    from facenet_keras.models.encoder import encode_chips

    chips, names = _crops_by_identity(shared_data / "faces")
    assert len(np.unique(names)) >= 10
    return encode_chips(chips, model=encoder), names


def _all_pairs(idx, names):
    i, j = np.triu_indices(len(idx), k=1)
    return idx[i], idx[j], names[idx[i]] == names[idx[j]]


def test_siamese_on_unseen_identities_matches_threshold_and_is_calibrated(crop_embeddings, tmp_path):
    emb, names = crop_embeddings
    people = np.unique(names)
    rng = np.random.default_rng(0)
    test_people = set(rng.permutation(people)[: len(people) // 3])
    test_idx = np.flatnonzero(np.isin(names, list(test_people)))
    train_idx = np.flatnonzero(~np.isin(names, list(test_people)))
    ti, tj, ts = _all_pairs(train_idx, names)
    qi, qj, qs = _all_pairs(test_idx, names)
    assert ts.any() and qs.any() and (~qs).any()

    clf = SiameseClassifier(kind="abs").fit(emb[ti], emb[tj], ts)
    p = clf.predict_proba((emb[qi], emb[qj]))
    assert p.shape == (len(qi),) and np.all((p >= 0) & (p <= 1))
    siamese_acc = float(np.mean((p >= 0.5) == qs))

    # the plain rule: a distance threshold chosen on the same training pairs
    from facenet_keras.evaluation.metrics import best_threshold

    d_train = np.linalg.norm(emb[ti] - emb[tj], axis=1)
    d_test = np.linalg.norm(emb[qi] - emb[qj], axis=1)
    thr_acc = float(np.mean((d_test <= best_threshold(d_train, ts)) == qs))
    assert siamese_acc >= thr_acc - 0.02, (siamese_acc, thr_acc)
    assert siamese_acc > 0.9
    # probabilities mean something: better than the base rate, and not over-confident
    base_rate = brier_score(np.full(len(qs), ts.mean()), qs)
    assert brier_score(p, qs) < 0.5 * base_rate
    assert expected_calibration_error(p, qs) < 0.1

    # symmetric, a decision rule, and a round trip through .keras
    np.testing.assert_allclose(clf.predict_proba(np.stack([emb[qj], emb[qi]], axis=1)), p, atol=1e-6)
    same, prob = clf(emb[qi[0]], emb[qj[0]])
    assert same == (prob >= 0.5) and prob == pytest.approx(p[0], abs=1e-6)
    path = clf.save(tmp_path / "head.keras")
    again = SiameseClassifier.load(path)
    np.testing.assert_allclose(again.predict_proba((emb[qi], emb[qj])), p, atol=1e-6)


def test_chi2_head_trains_too(crop_embeddings):
    emb, names = crop_embeddings
    i, j, s = _all_pairs(np.arange(len(names)), names)
    clf = SiameseClassifier(kind="chi2").fit(emb[i], emb[j], s, epochs=200)
    assert np.mean(clf.decide(emb[i], emb[j]) == s) > 0.9


def test_fit_needs_both_classes():
    e = np.ones((4, 8), "float32")
    with pytest.raises(ValueError):
        SiameseClassifier(dim=8).fit(e, e, np.ones(4))
