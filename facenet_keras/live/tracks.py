"""Recognition per track, not per frame: pick a track's best frames, vote, and say when it settled.

Pure: numbers in, decisions out. Each detection of a track gets a quality score (large, frontal,
sharp: :meth:`facenet_keras.faces.quality.FaceQuality.rank`); only detections that beat the
track's kept best ones are worth encoding (plus one every ``refresh`` seconds, so a long track
keeps being checked). Each encoded frame is a vote: the nearest enrolled identity when its
distance is within the threshold, else "not recognised" (None).
The track's identity is the majority of its votes once there are ``min_votes`` of them; it can change
as evidence accrues, and ``settled_at`` says since when the current answer has held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PENDING", "UNKNOWN", "TrackIdentity", "Vote"]

PENDING = "pending"  # not enough votes yet
UNKNOWN = "not recognised"


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
