"""The profiles (``fast``, ``accurate``): the fused vector's distance is the shipped z-score rule, on
synthetic vectors and on real photos, computed independently from the two encoders' own distances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facenet_keras.faces import profiles
from facenet_keras.faces.profiles import ACCURATE, FAST

pytest.importorskip("onnx")


def z_rule(d_dlib: np.ndarray, d_sface: np.ndarray) -> np.ndarray:
    """The shipped rule, written from its definition: 0.5 z_dlib + 0.5 z_sface with
    z = (d^2 - mean) / std of the build-time pairs' squared distances."""
    z_dlib = (d_dlib**2 - profiles.MEAN_DLIB) / profiles.S_DLIB
    z_sface = (d_sface**2 - profiles.MEAN_SFACE) / profiles.S_SFACE
    return 0.5 * z_dlib + 0.5 * z_sface


def z_threshold() -> float:
    """The rule's threshold on the z-score scale: |v1 - v2|^2 = z-rule + 0.5 (m_d / s_d + m_s / s_s)."""
    offset = 0.5 * (profiles.MEAN_DLIB / profiles.S_DLIB + profiles.MEAN_SFACE / profiles.S_SFACE)
    return ACCURATE.threshold**2 - offset


def test_the_fused_distance_is_the_z_score_rule_plus_a_constant():
    rng = np.random.default_rng(0)
    e_dlib, e_sface = rng.normal(0, 0.1, (20, 128)), rng.normal(0, 0.09, (20, 128))
    v = ACCURATE.fuse([e_dlib, e_sface]).astype(np.float64)
    i, j = np.triu_indices(20, 1)
    fused_sq = np.sum((v[i] - v[j]) ** 2, 1)
    rule = z_rule(np.linalg.norm(e_dlib[i] - e_dlib[j], axis=1), np.linalg.norm(e_sface[i] - e_sface[j], axis=1))
    np.testing.assert_allclose(fused_sq - rule, (ACCURATE.threshold**2 - z_threshold()), rtol=0, atol=1e-5)
    assert ACCURATE.scales == pytest.approx(
        (np.sqrt(0.5 / profiles.S_DLIB), np.sqrt(0.5 / profiles.S_SFACE)), rel=1e-12
    )


def test_profiles_are_named_spaces_and_fast_is_todays_space():
    from facenet_keras.faces.pipeline import embedding_space_id, encoder_threshold

    assert profiles.get_profile("Accurate") is ACCURATE and profiles.get_profile(FAST) is FAST
    with pytest.raises(ValueError, match="choose one of"):
        profiles.get_profile("precise")
    with pytest.raises(ValueError, match="not both"):
        profiles.encoder_choice("model.keras", "accurate")
    with pytest.raises(ValueError, match="not both"):
        profiles.encoder_choice(ACCURATE, "fast")
    assert profiles.encoder_choice(ACCURATE, "accurate") is ACCURATE and profiles.encoder_choice(None, None) is None
    assert embedding_space_id(FAST) == embedding_space_id(None)  # existing galleries keep working
    space = embedding_space_id(ACCURATE)
    assert space.startswith("profile-accurate:") and profiles.profile_of_space(space) is ACCURATE
    assert profiles.profile_of_space(embedding_space_id(None)) is None
    assert encoder_threshold(ACCURATE) == profiles.ACCURATE_THRESHOLD and encoder_threshold(FAST) == 0.6
    assert embedding_space_id(ACCURATE.unscaled()) != space  # the scales are part of the space


@pytest.fixture(scope="module")
def photos(shared_data):
    """Two photos each of six people of faces/ (full photos and tight crops)."""
    people = ["barack_obama", "angelina_jolie", "bbt_penny", "bbt_sheldon", "chris_pratt", "amy_adams"]
    out = []
    for person in people:
        files = sorted(p for p in (shared_data / "faces" / person).iterdir() if p.suffix != ".csv")[:2]
        out += [(person, str(f)) for f in files]
    return out


def test_accurate_decisions_reproduce_the_shipped_rule_exactly(photos):
    """The fused pipeline's decisions on every pair, against the rule computed from dlib's distance
    (the fast pipeline) and SFace's (its Keras model on ArcFace chips cut here from the detector's
    points, mirror averaged): the same decision on every pair."""
    from facenet_keras.faces.alignment import arcface_chips
    from facenet_keras.faces.pipeline import pipeline_for, primary_face
    from facenet_keras.identity.rules import resolve_threshold
    from facenet_keras.images import load_image
    from facenet_keras.models.sface import load_sface

    paths = [p for _, p in photos]
    fused_faces = pipeline_for(ACCURATE).encode_batch(paths, progress=False)
    fast_faces = pipeline_for(None).encode_batch(paths, progress=False)
    fused, e_dlib, e_sface = [], [], []
    sface = load_sface()
    for path, f_acc, f_fast in zip(paths, fused_faces, fast_faces):
        image = load_image(path)
        main, main_fast = primary_face(f_acc, image.shape), primary_face(f_fast, image.shape)
        assert main is not None and main.gated is None, path
        fused.append(main.embedding)
        e_dlib.append(main_fast.embedding)
        chip = arcface_chips(image, main_fast.landmarks)  # the fast pipeline's detection, not the profile's
        both = np.asarray(sface(np.concatenate([chip, chip[:, :, ::-1]]).astype(np.float32), training=False))
        e_sface.append(both.mean(axis=0))
    fused, e_dlib, e_sface = (np.asarray(x, np.float64) for x in (fused, e_dlib, e_sface))
    i, j = (np.array(x) for x in zip(*itertools.combinations(range(len(paths)), 2)))
    d_fused = np.linalg.norm(fused[i] - fused[j], axis=1)
    rule = z_rule(np.linalg.norm(e_dlib[i] - e_dlib[j], axis=1), np.linalg.norm(e_sface[i] - e_sface[j], axis=1))
    tau = resolve_threshold(None, None, ACCURATE)
    assert tau == ACCURATE.threshold
    np.testing.assert_allclose(d_fused**2, rule + (tau**2 - z_threshold()), rtol=0, atol=2e-5)
    decided, by_rule = d_fused <= tau, rule <= z_threshold()
    assert np.array_equal(decided, by_rule), np.flatnonzero(decided != by_rule)
    same = np.array([photos[a][0] == photos[b][0] for a, b in zip(i, j)])
    assert decided[same].any() and not decided[~same].all()  # the rule decides both ways here
    assert np.mean(decided == same) >= 0.95
