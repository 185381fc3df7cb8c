"""Recognition per track, not per frame: pick a track's best frames, vote, and say when it settled.

Pure: numbers in, decisions out. Each detection of a track gets a quality score (large, frontal,
sharp); only detections that beat the track's kept best ones are worth encoding (plus one every
``refresh`` seconds, so a long track keeps being checked). Each encoded frame is a vote: the
nearest enrolled identity when its distance is within the threshold, else "not recognised" (None).
The track's identity is the majority of its votes once there are ``min_votes`` of them; it can change
as evidence accrues, and ``settled_at`` says since when the current answer has held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PENDING", "UNKNOWN", "TrackIdentity", "Vote", "face_quality", "sharpness"]

PENDING = "pending"  # not enough votes yet
UNKNOWN = "not recognised"

# Face size (shorter box side, px) at which size stops adding to the quality: the encoder's chip is
# 150 px, and faces above ~80 px give embeddings as good as larger ones.
_FULL_SIZE = 80.0
# Laplacian variance (of a 64x64 grey face crop) at which sharpness stops adding to the quality.
_FULL_SHARPNESS = 150.0


def sharpness(image: np.ndarray, box) -> float:
    """Variance of the Laplacian of the face's box, resampled to 64x64 grey (a focus measure: blurred
    or motion-smeared faces score low). image (H, W, 3) uint8, box (x, y, w, h) px."""
    h, w = image.shape[:2]
    x, y, bw, bh = (float(v) for v in box)
    xs = np.clip(np.round(np.linspace(x, x + bw, 64)).astype(int), 0, w - 1)
    ys = np.clip(np.round(np.linspace(y, y + bh, 64)).astype(int), 0, h - 1)
    grey = image[ys[:, None], xs[None]].astype(np.float32).mean(axis=-1)
    lap = grey[1:-1, 2:] + grey[1:-1, :-2] + grey[2:, 1:-1] + grey[:-2, 1:-1] - 4.0 * grey[1:-1, 1:-1]
    return float(lap.var())


def frontality(landmarks) -> float:
    """1 for a frontal face, towards 0 as it turns or tilts: from MTCNN's five points (5, 2), the
    nose's offset from the eyes' and mouth's mid-line relative to the eye distance, and the eye
    line's tilt."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, nose, mouth = (lm[0] + lm[1]) / 2, lm[2], (lm[3] + lm[4]) / 2
    d_eyes = np.linalg.norm(lm[1] - lm[0])
    if d_eyes <= 1e-6:
        return 0.0
    axis = mouth - eyes
    axis_len = np.linalg.norm(axis)
    if axis_len <= 1e-6:
        return 0.0
    # signed distance of the nose from the line eyes -> mouth, in eye distances
    off = abs(np.cross(axis / axis_len, nose - eyes)) / d_eyes
    tilt = abs(np.arctan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0]))
    return float(np.clip(1.0 - 2.0 * off, 0.0, 1.0) * np.clip(1.0 - tilt / (np.pi / 3), 0.0, 1.0))


def face_quality(image: np.ndarray, box, landmarks) -> float:
    """How good a frame of a face is for recognition, in [0, 1]: size x frontality x sharpness (blur
    at most halves it: a dark, soft face is still worth a vote when it is the best there is)."""
    size = min(float(box[2]), float(box[3]))
    sharp = min(1.0, sharpness(image, box) / _FULL_SHARPNESS)
    return min(1.0, size / _FULL_SIZE) * frontality(landmarks) * (0.5 + 0.5 * sharp)


@dataclass(frozen=True)
class Vote:
    """One encoded frame of a track: when, how good, and what the gallery said."""

    time: float
    quality: float
    identity: str | None  # None: nobody within the threshold
    distance: float
    nearest: str | None


@dataclass
class TrackIdentity:
    """The evolving identity of one track.

    Args:
        best: how many of the best-quality votes decide (older, worse ones are dropped).
        min_votes: votes needed before any answer (before that the status is ``pending``).
        refresh: seconds after which a track is encoded again even without a better frame.
        min_quality: frames below this are never encoded (turned away, tiny or blurred).
    """

    best: int = 5
    min_votes: int = 2
    refresh: float = 1.0
    min_quality: float = 0.05
    votes: list[Vote] = field(default_factory=list)
    identity: str | None = None
    status: str = PENDING
    settled_at: float | None = None
    last_encoded: float | None = None

    def wants(self, quality: float, time: float) -> bool:
        """Whether a frame of this quality at ``time`` is worth encoding."""
        if quality < self.min_quality:
            return False
        if len(self.votes) < self.best:
            return True
        if quality > 1.1 * min(v.quality for v in self.votes):
            return True
        return self.last_encoded is None or time - self.last_encoded >= self.refresh

    def add(self, vote: Vote) -> bool:
        """Count one vote; returns True when the decision (status or identity) changed."""
        self.last_encoded = vote.time
        self.votes.append(vote)
        if len(self.votes) > self.best:  # drop the worst (the oldest among equals)
            worst = min(range(len(self.votes)), key=lambda i: (self.votes[i].quality, self.votes[i].time))
            del self.votes[worst]
        return self._decide(vote.time)

    def _decide(self, now: float) -> bool:
        if len(self.votes) < self.min_votes:
            return False
        counts: dict[str | None, float] = {}
        for v in self.votes:
            counts[v.identity] = counts.get(v.identity, 0.0) + 1.0
        top = max(counts.items(), key=lambda kv: (kv[1], kv[0] is None))  # ties go to "not recognised"
        name = top[0] if top[1] > len(self.votes) / 2 else None
        status = UNKNOWN if name is None else "identified"
        changed = (status, name) != (self.status, self.identity)
        if changed:
            self.status, self.identity, self.settled_at = status, name, now
        return changed

    @property
    def distance(self) -> float | None:
        """Median distance of the votes for the current identity (None when undecided)."""
        ds = [v.distance for v in self.votes if self.identity is not None and v.identity == self.identity]
        return float(np.median(ds)) if ds else None

    def label(self) -> str:
        """Short text for an annotation."""
        if self.status == PENDING:
            return "..."
        return self.identity if self.identity is not None else "?"
