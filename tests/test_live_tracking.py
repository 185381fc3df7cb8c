"""Pure parts of facenet_keras.live: tracking, per-track votes, liveness cues (no models, no data)."""

from __future__ import annotations

import itertools

import numpy as np

from facenet_keras.live import liveness as lv
from facenet_keras.live.tracking import Tracker, iou_matrix, scene_changed
from facenet_keras.live.tracks import PENDING, UNKNOWN, TrackIdentity, Vote


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def _crossing(tracker: Tracker, rng) -> tuple[list[int], list[int]]:
    """Two people side by side (boxes overlapping) swap places between two key frames."""
    ea, eb = rng.normal(size=128), rng.normal(size=128)
    ea, eb = 0.5 * ea / np.linalg.norm(ea), 0.5 * eb / np.linalg.norm(eb)  # about 0.7 apart
    emb = lambda: np.stack([ea + rng.normal(0, 0.01, 128), eb + rng.normal(0, 0.01, 128)])
    before = np.array([[100, 100, 80, 100], [160, 100, 80, 100]], float)  # A left, B right
    after = np.array([[150, 100, 80, 100], [110, 100, 80, 100]], float)  # A moved right of B
    first, _ = tracker.update(before, 0.0, emb())
    tracker.update(before, 0.1, emb())
    second, _ = tracker.update(after, 0.2, emb())
    return first, second


def test_two_faces_crossing_keep_their_tracks():
    """Boxes alone would give A's track to B (B's new box overlaps A's old one most); the embedding
    distance keeps each person on their own track."""
    first, second = _crossing(Tracker(max_distance=0.65), np.random.default_rng(0))
    assert second == first
    # the same scene with the embeddings ignored swaps them: the test above can fail
    first, second = _crossing(Tracker(max_distance=99, embedding_weight=0.0), np.random.default_rng(0))
    assert second == first[::-1]


def test_track_survives_a_few_missed_detections():
    tracker = Tracker(max_missed=3)
    (tid,), _ = tracker.update([[10, 10, 50, 50]], 0.0)
    for k in range(1, 4):
        ids, ended = tracker.update(np.zeros((0, 4)), k * 0.1)
        assert ended == []
    ids, ended = tracker.update([[12, 10, 50, 50]], 0.4)
    assert ids == [tid]
    for k in range(5, 9):
        _, ended = tracker.update(np.zeros((0, 4)), k * 0.1)
    assert [t.id for t in ended] == [tid]


def test_scene_cut_is_seen_but_motion_is_not():
    rng = np.random.default_rng(1)
    dark = rng.uniform(0, 60, (36, 64)).astype(np.float32)
    moved = np.roll(dark, 3, axis=1)
    bright = rng.uniform(150, 255, (36, 64)).astype(np.float32)
    assert not scene_changed(dark, moved)
    assert scene_changed(dark, bright)


def test_votes_settle_and_can_change():
    ident = TrackIdentity(best=5, min_votes=2)
    assert not ident.add(Vote(0.0, 0.5, "ada", 0.4, "ada"))
    assert ident.status == PENDING
    assert ident.add(Vote(0.2, 0.6, "ada", 0.45, "ada"))
    assert (ident.identity, ident.settled_at) == ("ada", 0.2)
    for k, t in enumerate((0.4, 0.6, 0.8)):  # three better frames say "nobody we know"
        ident.add(Vote(t, 0.9, None, 0.8, "ada"))
    assert ident.status == UNKNOWN and ident.identity is None and ident.settled_at == 0.6


def _model_points(yaw_deg: float, scale: float = 2.0) -> np.ndarray:
    """68 landmarks of a generic 3-D head turned by ``yaw_deg`` (only the model's 8 points are
    meaningful; the rest sit on a 3-D cloud so a homography cannot explain them)."""
    rng = np.random.default_rng(5)
    cloud = rng.normal(0, 40, size=(68, 3))
    for i, p in lv._MODEL_POINTS.items():
        cloud[i] = p
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    p = cloud @ rot.T
    return np.stack([300 + scale * p[:, 0], 200 - scale * p[:, 1]], axis=1)


def test_head_yaw_sign_and_size():
    yaw = lv.head_yaw(np.stack([_model_points(a) for a in (-20, 0, 25)]))
    np.testing.assert_allclose(yaw, [-20, 0, 25], atol=0.5)


def test_parallax_flat_versus_turning():
    flat = _model_points(0)
    h = np.array([[0.9, 0.1, 20], [-0.05, 1.1, 5], [1e-4, -2e-4, 1]])
    warped = np.c_[flat, np.ones(68)] @ h.T
    warped = warped[:, :2] / warped[:, 2:]
    times = np.array([0.0, 0.5])
    assert lv.parallax_residuals(np.stack([flat, warped]), times)[0] < 1e-6
    turned = lv.parallax_residuals(np.stack([flat, _model_points(20)]), times)[0]
    assert turned > 0.05


def test_blinks_need_a_short_dip_of_both_eyes():
    times = np.arange(60) / 30
    ear = np.full((60, 2), 0.3)
    ear[30:34] = 0.1  # both eyes, 4 frames: a blink
    assert lv.find_blinks(ear, times) == [times[30]]
    one_eye = np.full((60, 2), 0.3)
    one_eye[30:34, 0] = 0.1
    assert lv.find_blinks(one_eye, times) == []
    closed_long = np.full((60, 2), 0.3)
    closed_long[20:45] = 0.1  # eyes shut for 0.8 s: not a blink
    assert lv.find_blinks(closed_long, times) == []


def test_random_challenges_differ_and_are_valid():
    a, b = lv.Challenge.random(4, rng=1), lv.Challenge.random(4, rng=2)
    assert a != b
    for c in (a, b):
        actions = [p.action for p in c.prompts]
        assert all(x != y for x, y in itertools.pairwise(actions))
        assert all(p.end > p.start for p in c.prompts)
