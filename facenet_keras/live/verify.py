"""1:1 verification on a short clip, guarded by liveness: a match counts only from a live face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenet_keras.live.frames import read_frames
from facenet_keras.live.liveness import Challenge, LivenessResult, assess, measure_face

__all__ = ["ClipVerification", "verify_clip", "verify_frames"]

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
    gallery.embeddings(identity)  # KeyError naming who is enrolled, before reading the clip
    frames, times, _ = read_frames(clip, max_seconds=max_seconds)
    return verify_frames(frames, times, identity, gallery, threshold, challenge=challenge, model=model, source=clip)


def verify_frames(
    frames,
    times,
    identity: str,
    gallery,
    threshold: float | None = None,
    *,
    challenge: Challenge | None = None,
    model=None,
    detector=None,
    encode=None,
    source="the clip",
) -> ClipVerification:
    """:func:`verify_clip` on frames already decoded: ``frames`` (T, H, W, 3) uint8, ``times`` (T,) s.

    ``detector``: for the liveness landmarks (default MTCNN with 40 px faces); ``encode``: a function
    images -> faces with embeddings per image (default: the encoder's
    :class:`~facenet_keras.faces.pipeline.FacePipeline`; the service passes its shared, batched one).
    Frames whose main face the quality gate turns away do not count. ``source`` names the frames in messages.
    """
    from facenet_keras.faces.detection import NoFaceError
    from facenet_keras.faces.pipeline import describe_source, pipeline_for, primary_face
    from facenet_keras.identity.rules import check_gallery_space, encoder_for, resolve_threshold
    from facenet_keras.identity.search import pairwise_distances

    enrolled, _ = gallery.embeddings(identity)  # KeyError naming who is enrolled
    pipe = pipeline_for(encoder_for(gallery, model))
    check_gallery_space(gallery, pipe)
    tau = resolve_threshold(threshold, gallery, pipe)
    m = measure_face(frames, times, detector=detector)
    live = assess(m, challenge)
    present = np.flatnonzero(m.present)
    if present.size == 0:
        raise NoFaceError(f"no face found in {describe_source(source)}")
    picks = present[np.linspace(0, present.size - 1, min(_MATCH_FRAMES, present.size)).astype(int)]
    if encode is None:
        encode = pipe.encode_images
    distances = []
    for faces, k in zip(encode([frames[k] for k in picks]), picks):
        face = primary_face(faces, frames[k].shape)
        if face is not None and face.gated is None:
            distances.append(float(pairwise_distances(face.embedding[None], enrolled).min()))
    if not distances:
        raise NoFaceError(f"no usable face could be encoded in {describe_source(source)}")
    d = float(np.median(distances))
    close = d <= tau
    return ClipVerification(close and live.live, close, d, tau, identity, live)
