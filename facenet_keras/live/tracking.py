"""Faces linked across frames: box overlap plus embedding distance, solved as an assignment.

Pure: boxes and embeddings in, track ids out; no images, no models. A track predicts where its face
is now from its last box and velocity; detections are matched to tracks by the Hungarian method on
the cost ``(1 - IoU) + embedding_weight * distance`` (the embedding term only where both sides have
an embedding). Pairs that barely overlap, or whose embeddings say "different people", are never
matched: so two people crossing keep their own tracks even when their boxes overlap. A track that
finds no detection survives ``max_missed`` updates (coasting on its velocity) before it ends.

Boxes are ``(x, y, w, h)`` in pixels; times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SCENE_CORRELATION",
    "SCENE_CUT",
    "Track",
    "Tracker",
    "associate",
    "frame_signature",
    "iou_matrix",
    "scene_changed",
]

#: Two key frames are taken to be different shots (an edit cut; tracks never continue across it)
#: when their grey-level histograms differ by more than SCENE_CUT (total variation) and their
#: thumbnails correlate less than SCENE_CORRELATION. On the test clip its three cuts score
#: (0.19, 0.19), (0.34, 0.00), (0.31, 0.11) between key frames 5 frames apart; fast camera or head
#: motion changes one of the two, not both (worst: (0.17, 0.36) and (0.12, 0.13)).
SCENE_CUT = 0.15
SCENE_CORRELATION = 0.3


def frame_signature(image: np.ndarray) -> np.ndarray:
    """(36, 64) float32 grey thumbnail of an (H, W, 3) frame (nearest sampling: cheap)."""
    h, w = image.shape[:2]
    ys = np.linspace(0, h - 1, 36).astype(int)
    xs = np.linspace(0, w - 1, 64).astype(int)
    return image[ys[:, None], xs[None]].astype(np.float32).mean(axis=-1)


def scene_changed(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two :func:`frame_signature` thumbnails belong to different shots."""
    ha = np.bincount(np.clip(a // 8, 0, 31).astype(int).ravel(), minlength=32) / a.size
    hb = np.bincount(np.clip(b // 8, 0, 31).astype(int).ravel(), minlength=32) / b.size
    da, db = (a - a.mean()).ravel(), (b - b.mean()).ravel()
    corr = float(da @ db / max(np.sqrt((da @ da) * (db @ db)), 1e-9))
    return bool(0.5 * np.abs(ha - hb).sum() > SCENE_CUT and corr < SCENE_CORRELATION)


def iou_matrix(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4) -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def associate(
    track_boxes,
    det_boxes,
    track_embeddings=None,
    det_embeddings=None,
    *,
    min_iou: float = 0.1,
    max_distance: float = 0.65,
    embedding_weight: float = 0.5,
):
    """Match detections to tracks.

    track_boxes (N, 4), det_boxes (M, 4); embeddings (N, D) / (M, D) or None, with NaN rows where
    unknown. A pair is allowed when IoU >= ``min_iou`` and, if both embeddings are known, their
    distance <= ``max_distance``. Returns (pairs (K, 2) int of (track, detection) indices,
    unmatched track indices, unmatched detection indices).
    """
    from scipy.optimize import linear_sum_assignment

    iou = iou_matrix(track_boxes, det_boxes)
    n, m = iou.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), int), np.arange(n), np.arange(m)
    cost = 1.0 - iou
    allowed = iou >= min_iou
    if track_embeddings is not None and det_embeddings is not None:
        te = np.asarray(track_embeddings, np.float64).reshape(n, -1)
        de = np.asarray(det_embeddings, np.float64).reshape(m, -1)
        dist = np.linalg.norm(te[:, None] - de[None], axis=-1)  # NaN where either is unknown
        known = np.isfinite(dist)
        cost = np.where(known, cost + embedding_weight * np.nan_to_num(dist), cost)
        allowed &= ~known | (np.nan_to_num(dist) <= max_distance)
    big = 1e6
    rows, cols = linear_sum_assignment(np.where(allowed, cost, big))
    keep = allowed[rows, cols]
    pairs = np.stack([rows[keep], cols[keep]], axis=1).astype(int)
    return (pairs, np.setdiff1d(np.arange(n), pairs[:, 0]), np.setdiff1d(np.arange(m), pairs[:, 1]))


@dataclass
class Track:
    """One face over time: ``box`` (x, y, w, h) at ``last_time``, ``velocity`` (px/s of x, y, w, h),
    ``embedding`` (running mean of the embeddings seen, or None), ``missed`` consecutive updates
    without a detection, ``hits`` detections in all."""

    id: int
    box: np.ndarray
    first_time: float
    last_time: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    embedding: np.ndarray | None = None
    n_embeddings: int = 0
    missed: int = 0
    hits: int = 1

    def predict(self, time: float) -> np.ndarray:
        """Where the box should be at ``time`` (constant velocity; size kept positive)."""
        box = self.box + self.velocity * (time - self.last_time)
        box[2:] = np.maximum(box[2:], 1.0)
        return box

    def add_embedding(self, embedding: np.ndarray) -> None:
        e = np.asarray(embedding, np.float64)
        self.n_embeddings += 1
        self.embedding = (
            e.copy() if self.embedding is None else self.embedding + (e - self.embedding) / self.n_embeddings
        )


class Tracker:
    """Tracks faces across the frames detection ran on.

    Args:
        max_missed: updates a track may go without a detection before it ends.
        min_iou, max_distance, embedding_weight: see :func:`associate`.
    """

    def __init__(
        self, max_missed: int = 3, *, min_iou: float = 0.1, max_distance: float = 0.65, embedding_weight: float = 0.5
    ):
        self.max_missed = int(max_missed)
        self.min_iou, self.max_distance, self.embedding_weight = min_iou, max_distance, embedding_weight
        self.tracks: list[Track] = []
        self._next_id = 1

    def predicted_boxes(self, time: float) -> np.ndarray:
        return np.array([t.predict(time) for t in self.tracks]).reshape(-1, 4)

    def ambiguous(self, boxes, time: float) -> np.ndarray:
        """(M,) bool: detections that overlap two tracks, or a track that overlaps them and another
        detection, i.e. where boxes alone could swap identities and embeddings should decide."""
        iou = iou_matrix(self.predicted_boxes(time), boxes) >= self.min_iou  # (N, M)
        if iou.size == 0:
            return np.zeros(len(np.asarray(boxes).reshape(-1, 4)), bool)
        crowded_tracks = iou.sum(axis=1) >= 2
        return (iou.sum(axis=0) >= 2) | (iou & crowded_tracks[:, None]).any(axis=0)

    def likely_tracks(self, boxes, time: float) -> np.ndarray:
        """(M,) the id of the track each detection most overlaps (0 when none): a guess made before
        :meth:`update`, for deciding which detections are worth encoding."""
        iou = iou_matrix(self.predicted_boxes(time), boxes)
        out = np.zeros(iou.shape[1], int)
        if iou.shape[0]:
            best = iou.argmax(axis=0)
            ok = iou[best, np.arange(iou.shape[1])] >= self.min_iou
            out[ok] = [self.tracks[i].id for i in best[ok]]
        return out

    def update(self, boxes, time: float, embeddings=None) -> tuple[list[int], list[Track]]:
        """Feed the detections (M, 4) found at ``time`` (embeddings (M, D) with NaN rows where not
        computed, or None). Returns the track id of each detection (new tracks for unmatched ones) and
        the tracks that ended (missed more than ``max_missed`` updates)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        emb = None if embeddings is None else np.asarray(embeddings, np.float64).reshape(len(boxes), -1)
        track_emb = None
        if emb is not None and self.tracks:
            track_emb = np.array(
                [t.embedding if t.embedding is not None else np.full(emb.shape[1], np.nan) for t in self.tracks]
            )
        pairs, lost, new = associate(
            self.predicted_boxes(time),
            boxes,
            track_emb,
            emb,
            min_iou=self.min_iou,
            max_distance=self.max_distance,
            embedding_weight=self.embedding_weight,
        )
        ids = [0] * len(boxes)
        for ti, di in pairs:
            t = self.tracks[ti]
            dt = time - t.last_time
            if dt > 0:
                t.velocity = 0.5 * t.velocity + 0.5 * (boxes[di] - t.box) / dt
            t.box, t.last_time, t.missed = boxes[di].copy(), time, 0
            t.hits += 1
            ids[di] = t.id
        for ti in lost:
            self.tracks[ti].missed += 1
        for di in new:
            t = Track(self._next_id, boxes[di].copy(), time, time)
            self._next_id += 1
            self.tracks.append(t)
            ids[di] = t.id
        if emb is not None:
            by_id = {t.id: t for t in self.tracks}
            for di, tid in enumerate(ids):
                if np.all(np.isfinite(emb[di])):
                    by_id[tid].add_embedding(emb[di])
        ended = [t for t in self.tracks if t.missed > self.max_missed]
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return ids, ended

    def finish(self) -> list[Track]:
        """End every track (the video is over)."""
        ended, self.tracks = self.tracks, []
        return ended
