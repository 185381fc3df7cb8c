"""1:1 verification on a short clip, guarded by liveness: a match counts only from a live face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenet_keras.live.frames import read_frames
from facenet_keras.live.liveness import Challenge, LivenessResult, assess, measure_face

__all__ = ["ClipVerification", "verify_clip"]

# frames of the clip encoded for the match (spread evenly over the frames where the face is found)
_MATCH_FRAMES = 5


@dataclass(frozen=True)
class ClipVerification:
    """``match`` is True only when the face is live and its median distance to ``identity`` is within
    the threshold; ``distance_match`` says whether the faces matched at all."""

    match: bool
    distance_match: bool
    distance: float
    threshold: float
    identity: str
    liveness: LivenessResult

    def to_dict(self) -> dict:
        return {
            "match": self.match,
            "identity": self.identity,
            "distance": round(self.distance, 5),
            "threshold": self.threshold,
            "distance_match": self.distance_match,
            "liveness": self.liveness.to_dict(),
        }


def verify_clip(
    clip,
    identity: str,
    gallery,
    threshold: float | None = None,
    *,
    challenge: Challenge | None = None,
    max_seconds: float = 10.0,
    model=None,
) -> ClipVerification:
    """Is the person in ``clip`` (a video file) the enrolled ``identity``, and live?

    Liveness looks at the first ``max_seconds`` s (:func:`~.liveness.check_liveness`); the match is
    the median distance over a few frames spread through the clip. Raises KeyError for an identity
    not enrolled and :class:`~facenet_keras.detection.NoFaceError` when no frame shows a face.
    """
    from facenet_keras.faces.detection import NoFaceError
    from facenet_keras.faces.pipeline import describe_source, encode_batch, primary_face
    from facenet_keras.identity.recognition import check_gallery_space, resolve_threshold
    from facenet_keras.identity.search import pairwise_distances

    enrolled, _ = gallery.embeddings(identity)  # KeyError naming who is enrolled
    check_gallery_space(gallery, model)
    tau = resolve_threshold(threshold, gallery, model)
    frames, times, _ = read_frames(clip, max_seconds=max_seconds)
    m = measure_face(frames, times)
    live = assess(m, challenge)
    present = np.flatnonzero(m.present)
    if present.size == 0:
        raise NoFaceError(f"no face found in {describe_source(clip)}")
    picks = present[np.linspace(0, present.size - 1, min(_MATCH_FRAMES, present.size)).astype(int)]
    distances = []
    for faces, k in zip(encode_batch([frames[k] for k in picks], model=model, progress=False), picks):
        face = primary_face(faces, frames[k].shape)
        if face is not None:
            distances.append(float(pairwise_distances(face.embedding[None], enrolled).min()))
    if not distances:
        raise NoFaceError(f"no face could be encoded in {describe_source(clip)}")
    d = float(np.median(distances))
    close = d <= tau
    return ClipVerification(close and live.live, close, d, tau, identity, live)
