"""One face record for the whole package: where a face is, how sure the detector is, and (once
encoded) its embedding. Detection returns it without an embedding; the pipeline adds one.

Conventions, named once: ``box`` is ``(x, y, w, h)`` in pixels of the photo (top-left corner,
width, height); ``landmarks`` are (5, 2) ``(x, y)`` pixels in the order of :data:`LANDMARK_NAMES`,
where "left" is the image's left. Other conventions (corners, dlib rectangles) are converted at
the edges that need them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Face", "LANDMARK_NAMES"]

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)
class Face:
    """One face in a photo.

    Attributes:
        box: float32 (4,) ``x, y, w, h`` in pixels, clipped to the photo.
        landmarks: float32 (5, 2) ``(x, y)`` of :data:`LANDMARK_NAMES`; may lie slightly outside
            the photo for faces cut by its border.
        confidence: the detector's face probability in [0, 1].
        embedding: float32 (D,) once encoded, else None.
        quality: the pipeline's :class:`~facenet_keras.faces.quality.FaceQuality` (size, score,
            landmark geometry, pose, sharpness and the gate's ``reason``), else None (a bare detection).
    """

    box: np.ndarray
    landmarks: np.ndarray
    confidence: float
    embedding: np.ndarray | None = field(default=None, repr=False)
    quality: Any = field(default=None, repr=False)

    def __post_init__(self):
        box = np.asarray(self.box, dtype=np.float32).reshape(4)
        lm = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)
        box.setflags(write=False)
        lm.setflags(write=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "confidence", float(self.confidence))
        if self.embedding is not None:
            object.__setattr__(self, "embedding", np.asarray(self.embedding, dtype=np.float32).reshape(-1))

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float(self.box[2]) * float(self.box[3])

    @property
    def center(self) -> tuple[float, float]:
        """Box centre (x, y) in pixels."""
        return (float(self.box[0] + self.box[2] / 2.0), float(self.box[1] + self.box[3] / 2.0))

    @property
    def gated(self) -> str | None:
        """Why the quality gate turned this face away ("too small", "not a face?", "low quality"),
        or None when it is usable (or was never judged)."""
        return None if self.quality is None else self.quality.reason

    def with_embedding(self, embedding) -> Face:
        """The same face carrying ``embedding`` (D,)."""
        return dataclasses.replace(self, embedding=embedding)

    def with_quality(self, quality) -> Face:
        """The same face carrying the gate's judgement of it."""
        return dataclasses.replace(self, quality=quality)

    def to_dict(self, embedding: bool = True) -> dict:
        """The one JSON shape of a face: ``{"box": [x, y, w, h], "confidence": c,
        "landmarks": {name: [x, y]}}``, plus ``"gated": reason-or-null`` and ``"quality": {...}`` once
        judged, and ``"embedding": [...]`` when it has one and ``embedding``."""
        out = {
            "box": [round(float(v), 2) for v in self.box],
            "confidence": round(float(self.confidence), 5),
            "landmarks": {
                name: [round(float(self.landmarks[i, 0]), 2), round(float(self.landmarks[i, 1]), 2)]
                for i, name in enumerate(LANDMARK_NAMES)
            },
        }
        if self.quality is not None:
            out["gated"] = self.quality.reason
            out["quality"] = self.quality.to_dict()
        if embedding and self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        return out

    def __repr__(self) -> str:
        x, y, w, h = (round(float(v), 1) for v in self.box)
        enc = f", embedding=({self.embedding.shape[0]},)" if self.embedding is not None else ""
        gated = f", gated={self.gated!r}" if self.gated else ""
        return f"Face(box=[{x}, {y}, {w}, {h}], confidence={self.confidence:.4f}{enc}{gated})"
