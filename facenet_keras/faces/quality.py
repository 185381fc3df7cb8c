"""Is a detection a face good enough to recognise? Measures from the photo and the five landmarks,
and the gate that turns them into one reason (or None). Pure numpy, well under 1 ms per face.

The measures (all on :class:`FaceQuality`):

- ``eye_distance``: px between the eye landmarks, the face's scale in the photo (the box is not:
  MTCNN's boxes vary in margin, the eyes do not).
- ``score``: the detector's confidence.
- ``geometry``: how far the five points lie outside the layouts a real face can have, scale-free
  (0 = a face's layout; see :func:`landmark_geometry`).
- ``yaw`` / ``pitch``: the nose's offset from where a frontal face has it, in eye distances (0 =
  frontal; taking the nose 0.55 eye distances in front of the eyes, yaw 0.3 is about 30 degrees,
  0.6 about 47, 1.0 about 60); ``roll``: the eye line's angle in degrees, clockwise in the image.
  From the 2-D points, not a 3-D fit (the units of ``library/quality.pose``, which this replaces).
- ``sharpness``: the spread of the Laplacian over the spread of the grey levels, on a fixed 64 px
  grey crop aligned from the landmarks (so faces of every size and contrast are measured alike).

Which reason wins when several apply: "too small" first, then "not a face?", then "low quality".
Below the size at which faces stop being recognisable the other measures are not evidence either
(O-Net's landmarks and score on a blob 10 px across say little), so the honest answer is the measured
one: a bigger photo would tell. Above it, an implausible score or layout means the detection is
probably not a face at all, which matters more than how sharp or turned it is. The same limit
applies to the evidence itself: a detector that downscales a big photo (``max_side``) judged the
face at a smaller size, and below the limit there its score says nothing ("not a face?"; found on
the first held-out face-free set: a shelf in a tiled photo, eyes 15 px apart in the photo, 10 at
the detector's scale, score 0.97).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facenet_keras.faces.alignment import face_transforms
from facenet_keras.faces.detection import DEFAULT_MAX_SIDE
from facenet_keras.faces.face import Face

__all__ = [
    "DEFAULT_GATE",
    "LOW_QUALITY",
    "NOT_A_FACE",
    "REASONS",
    "REFERENCE_GATE",
    "QUALITY_VERSION",
    "TOO_SMALL",
    "FaceQuality",
    "QualityGate",
    "assess",
    "landmark_geometry",
    "measure",
    "pose",
    "sharpness",
]

TOO_SMALL = "too small"
NOT_A_FACE = "not a face?"
LOW_QUALITY = "low quality"
REASONS = (TOO_SMALL, NOT_A_FACE, LOW_QUALITY)
# Bump when a measure's formula changes (caches of measured faces key on it).
QUALITY_VERSION = 1

# The sharpness crop: the landmarks' similarity onto the encoder's template, 64 px, a thin margin
# (the inner face: eyes, nose, mouth; about 28 px between the eyes).
CROP_SIZE = 64
CROP_PADDING = 0.1

# Landmark layouts a face can have, in the frame where the eyes are level, 1 unit apart, their
# midpoint at the origin (y down). Each range holds every detection of a real face on the shared
# photos (turned, tilted and profile faces included) with a wide margin.
#   nose_depth: the nose's height as a fraction of the mouth's (0.21 .. 0.85 observed)
#   mouth_drop: the mouth's height below the eyes (0.82 .. 1.64 frontal, up to 2.8 near profile,
#               where the eye distance shrinks)
#   mouth_width: mouth corners' distance (0.63 .. 1.22; turning shrinks it with the eye distance)
#   mouth_tilt: the mouth line's angle to the eye line, degrees (-5.4 .. 5.4)
#   mouth_shift: the mouth centre's sideways offset over its drop (-0.28 .. 0.16)
GEOMETRY_RANGES = {
    "nose_depth": (0.05, 1.0),
    "mouth_drop": (0.5, 3.5),
    "mouth_width": (0.4, 1.6),
    "mouth_tilt": (-15.0, 15.0),
    "mouth_shift": (-0.5, 0.5),
}
_CROP_GRID = (
    np.stack(np.meshgrid(np.arange(CROP_SIZE), np.arange(CROP_SIZE)), axis=-1).reshape(-1, 2).astype(np.float64)
)
_IMPOSSIBLE = 10.0  # geometry of a layout no face has (mouth above the eyes, points on top of each other)

# rank(): the eye distance and the sharpness at which each stops adding (a face with 40 px between
# the eyes is as good as a bigger one for a 150 px chip; LFW's main faces: median 41 px).
_FULL_EYES = 40.0
_FULL_SHARPNESS = 0.5


@dataclass(frozen=True)
class FaceQuality:
    """What :func:`assess` measured on one detection, and the gate's verdict (``reason``)."""

    eye_distance: float  # px between the two eye landmarks in the photo (the face's scale)
    detected_eye_distance: float  # the same as the detector saw it (it downscales big photos), px
    size: float  # shorter side of the box, px
    score: float  # the detector's confidence
    geometry: float  # how far the 5 landmarks are from any layout a face can have (0 = a face's)
    yaw: float  # nose offset sideways, in eye distances (0 = frontal)
    pitch: float  # nose offset up/down from a frontal face's, in eye distances
    roll: float  # eye line's angle, degrees
    sharpness: float  # Laplacian spread / grey spread on the 64 px aligned crop
    reason: str | None  # None = usable; else one of REASONS

    @property
    def usable(self) -> bool:
        """Whether the face may be recognised, clustered, named or enrolled."""
        return self.reason is None

    def rank(self) -> float:
        """How good this frame of a face is, in [0, 1] (big, frontal, sharp): for picking a video
        track's best frames. Usable faces rank above 0 (a profile at most halves it, roll costs a
        quarter at most: the chip's alignment undoes it); a gated face ranks 0, never worth encoding."""
        if self.reason is not None:
            return 0.0
        size = min(1.0, self.eye_distance / _FULL_EYES)
        frontal = (1.0 - 0.5 * min(1.0, abs(self.yaw))) * (1.0 - 0.25 * min(1.0, abs(self.roll) / 60.0))
        sharp = min(1.0, self.sharpness / _FULL_SHARPNESS)
        return float(size * frontal * (0.5 + 0.5 * sharp))

    def to_dict(self) -> dict:
        """JSON-able, rounded: every measure, ``usable`` and ``reason``."""
        return {
            "usable": self.usable,
            "reason": self.reason,
            "eye_distance": round(self.eye_distance, 1),
            "detected_eye_distance": round(self.detected_eye_distance, 1),
            "size": round(self.size, 1),
            "score": round(self.score, 4),
            "geometry": round(self.geometry, 3),
            "yaw": round(self.yaw, 3),
            "pitch": round(self.pitch, 3),
            "roll": round(self.roll, 1),
            "sharpness": round(self.sharpness, 3),
        }


@dataclass(frozen=True)
class QualityGate:
    """Thresholds that make a detection usable; :meth:`judge` gives the one reason it is not."""

    min_eye_distance: float  # px; below: "too small"; below as the detector saw it: "not a face?"
    min_score: float  # detector confidence; below: "not a face?"
    max_geometry: float  # landmark_geometry(); above: "not a face?"
    max_abs_yaw: float  # eye distances; above: "low quality" (near profile)
    max_abs_roll: float  # degrees; above: "low quality"
    min_sharpness: float  # below: "low quality" (blurred)

    def judge(
        self,
        *,
        eye_distance: float,
        score: float,
        geometry: float,
        yaw: float,
        roll: float,
        sharpness: float,
        detected_eye_distance: float | None = None,
    ) -> str | None:
        """The reason a face with these measures is not usable, or None (order: see the module).
        ``detected_eye_distance``: the eye distance at the scale the detector worked on (default:
        ``eye_distance``); below ``min_eye_distance`` its score and landmarks are no evidence."""
        if not eye_distance >= self.min_eye_distance:
            return TOO_SMALL
        seen = eye_distance if detected_eye_distance is None else detected_eye_distance
        if not (seen >= self.min_eye_distance and score >= self.min_score and geometry <= self.max_geometry):
            return NOT_A_FACE
        if not (abs(yaw) <= self.max_abs_yaw and abs(roll) <= self.max_abs_roll and sharpness >= self.min_sharpness):
            return LOW_QUALITY
        return None

    def rejudge(self, q: FaceQuality) -> FaceQuality:
        """``q`` judged by this gate instead (its measures reused, nothing measured again)."""
        reason = self.judge(
            eye_distance=q.eye_distance,
            detected_eye_distance=q.detected_eye_distance,
            score=q.score,
            geometry=q.geometry,
            yaw=q.yaw,
            roll=q.roll,
            sharpness=q.sharpness,
        )
        return dataclasses.replace(q, reason=reason)


# The defaults, chosen on ../shared/data (benchmarks/face_quality_limits.py: 300 pairs of LFW fold 1,
# one photo of each degraded; accuracy at the encoder's threshold, full size 0.997):
# - min_eye_distance 12 px: downscaled to 12 px between the eyes 0.997, 10 px 0.983, 8 px 0.967,
#   6 px 0.870; the smallest size tested that stays within a point of full size. The detector's
#   evidence (score, landmarks) is held to the same size where the detector saw the face (it
#   downscales photos beyond its max_side): this rule was added after the first held-out face-free
#   set showed three detections the gate passed (eyes 15 px apart in a 2 x 2 tiled photo, 10.4 at
#   the detector's scale); on the shared photos it refuses two more detections, both non-faces.
# - min_sharpness 0.10: blurred faces binned by sharpness: >= 0.10 at least 0.988, [0.08, 0.10)
#   0.968, [0.06, 0.08) 0.873 (and 3% of impostors accepted), below 0.06 0.717.
# - min_score 0.89: every main face of lfw-dev (lowest 0.897) and faces/ (0.926) is above it; the
#   non-faces found by eye on the shared photos with eyes >= 12 px apart score 0.816 .. 0.885.
# - max_geometry 0: MTCNN's landmarks always have a face's layout on the shared photos (faces or
#   not); the check refuses landmark sets no face has (corrupt, or from another source).
# - max_abs_yaw 1.0 (about 60 degrees, taking the nose 0.55 eye distances in front of the eyes):
#   beyond it the hidden eye's landmark is a guess. lfw-dev's main faces reach 0.56, the clip's
#   audience profiles 0.95. max_abs_roll 60 degrees: MTCNN does not find faces rolled further.
DEFAULT_GATE = QualityGate(
    min_eye_distance=12.0,
    min_score=0.89,
    max_geometry=0.0,
    max_abs_yaw=1.0,
    max_abs_roll=60.0,
    min_sharpness=0.10,
)
# An enrolment reference: identity/recognition.py's MIN_EYE_DISTANCE 20 px (same measure) and
# MIN_SHARPNESS 0.06 on the 150 px chip, which is 0.14 in this module's sharpness (median over LFW
# faces blurred 0 to 4 px whose chip measured 0.055 .. 0.065; the two correlate at 0.97); a near-
# frontal face (|yaw| <= 0.6, about 47 degrees: every main face of lfw-dev and faces/ is within 0.56).
# The evidence that it is a face (score, layout) is the default's: a reference is not more a face.
REFERENCE_GATE = dataclasses.replace(
    DEFAULT_GATE, min_eye_distance=20.0, max_abs_yaw=0.6, max_abs_roll=45.0, min_sharpness=0.14
)


def _face_frame(landmarks) -> tuple[np.ndarray, float]:
    """The five points in the face's frame (eyes level, 1 unit apart, their midpoint at the origin,
    y down) and the eye distance in px; all-zero points for a degenerate eye pair."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    v = p[1] - p[0]
    eyes = float(np.hypot(v[0], v[1]))
    if not eyes > 1e-6:
        return np.zeros((5, 2)), 0.0
    c, s = v / eyes
    rot = np.array([[c, s], [-s, c]])
    return (p - (p[0] + p[1]) / 2.0) @ rot.T / eyes, eyes


def pose(landmarks) -> tuple[float, float, float]:
    """(yaw, pitch, roll) from five landmarks (5, 2): yaw and pitch in eye distances (the nose's
    offset from the midline of eyes and mouth, and from halfway between them), roll in degrees."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    q, eyes = _face_frame(p)
    if eyes == 0.0:
        return 0.0, 0.0, 0.0
    mouth = (q[3] + q[4]) / 2.0
    roll = float(np.degrees(np.arctan2(p[1, 1] - p[0, 1], p[1, 0] - p[0, 0])))
    return float(q[2, 0] - mouth[0] / 2.0), float(q[2, 1] - mouth[1] / 2.0), roll


def landmark_geometry(landmarks) -> float:
    """How far five landmarks (5, 2) lie from every layout a face can have: the largest excess of
    one of :data:`GEOMETRY_RANGES` beyond its range, as a fraction of the range (0 = a face's layout;
    scale- and rotation-free)."""
    q, eyes = _face_frame(landmarks)
    mouth = (q[3] + q[4]) / 2.0
    if eyes == 0.0 or mouth[1] <= 1e-6 or q[4, 0] <= q[3, 0]:
        return _IMPOSSIBLE
    features = {
        "nose_depth": q[2, 1] / mouth[1],
        "mouth_drop": mouth[1],
        "mouth_width": float(np.hypot(*(q[4] - q[3]))),
        "mouth_tilt": float(np.degrees(np.arctan2(q[4, 1] - q[3, 1], q[4, 0] - q[3, 0]))),
        "mouth_shift": mouth[0] / mouth[1],
    }
    worst = 0.0
    for name, value in features.items():
        lo, hi = GEOMETRY_RANGES[name]
        worst = max(worst, (lo - value) / (hi - lo), (value - hi) / (hi - lo))
    return float(min(worst, _IMPOSSIBLE))


def sharpness(image: np.ndarray, landmarks) -> float:
    """Focus of one face: std of the 4-neighbour Laplacian over std of the grey levels, on a
    CROP_SIZE grey crop aligned from the landmarks (the photo area-averaged first where the crop
    shrinks it, so a big face is not aliased into looking sharp). Blur lowers it; contrast,
    brightness and the face's size in the photo do not count."""
    grey = _aligned_grey(np.asarray(image), np.asarray(landmarks, np.float64).reshape(5, 2))
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4.0 * grey[1:-1, 1:-1]
    return float(lap.std() / max(float(grey.std()), 1.0))


def _aligned_grey(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(CROP_SIZE, CROP_SIZE) float32 grey crop: only the photo's pixels under the crop are read."""
    m = face_transforms(landmarks[None], CROP_SIZE, CROP_PADDING)[0]  # image -> crop
    lin, off = m[:, :2], m[:, 2]
    inv = np.linalg.inv(lin)
    corners = (np.array([[0, 0], [CROP_SIZE, 0], [0, CROP_SIZE], [CROP_SIZE, CROP_SIZE]]) - off) @ inv.T
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int) - 1, 0, [w, h])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 2, 0, [w, h])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    # photo px per crop px: average k x k blocks first so the bilinear sampling below does not alias;
    # for big faces the blocks are sampled every `step` px (a 2 x 2 average at least), keeping the cost
    # per face about constant whatever the face's size
    k = max(1, int(1.0 / np.sqrt(abs(np.linalg.det(lin)))))
    step = max(1, k // 2)
    kk = k // step
    region = image[y0:y1:step, x0:x1:step]
    hh, ww = (region.shape[0] // kk) * kk, (region.shape[1] // kk) * kk
    if hh < kk or ww < kk:
        return np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    grey = region[:hh, :ww].astype(np.float32).mean(axis=2)
    if kk > 1:
        grey = grey.reshape(hh // kk, kk, ww // kk, kk).mean(axis=(1, 3))
    # crop pixel (u, v) -> photo (x, y) -> block coordinates (a block spans step * kk photo px)
    xy = (_CROP_GRID - off) @ inv.T
    span, centre = step * kk, (kk - 1) / 2.0 * step
    bx = (xy[:, 0] - x0 - centre) / span
    by = (xy[:, 1] - y0 - centre) / span
    return _bilinear_grey(grey, bx, by).reshape(CROP_SIZE, CROP_SIZE)


def _bilinear_grey(grey: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of a 2-D array at (x, y), edges replicated."""
    h, w = grey.shape
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    xi = np.minimum(x.astype(np.int64), w - 2) if w > 1 else np.zeros(x.shape, np.int64)
    yi = np.minimum(y.astype(np.int64), h - 2) if h > 1 else np.zeros(y.shape, np.int64)
    fx = (x - xi).astype(np.float32)
    fy = (y - yi).astype(np.float32)
    x1 = np.minimum(xi + 1, w - 1)
    y1 = np.minimum(yi + 1, h - 1)
    top = grey[yi, xi] * (1 - fx) + grey[yi, x1] * fx
    bottom = grey[y1, xi] * (1 - fx) + grey[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def measure(
    image: np.ndarray, face: Face, gate: QualityGate | None = None, *, detector_max_side: int | None = DEFAULT_MAX_SIDE
) -> FaceQuality:
    """:class:`FaceQuality` of one detected face of ``image`` (H, W, 3) uint8, judged by ``gate``;
    ``detector_max_side``: the detector's ``max_side`` (see :func:`assess`)."""
    gate = DEFAULT_GATE if gate is None else gate
    lm = np.asarray(face.landmarks, np.float64).reshape(5, 2)
    eyes = float(np.hypot(*(lm[1] - lm[0])))
    longest = max(image.shape[:2])
    seen = eyes if detector_max_side is None or longest <= detector_max_side else eyes * detector_max_side / longest
    yaw, pitch, roll = pose(lm)
    judged = {  # what the gate looks at
        "eye_distance": eyes,
        "detected_eye_distance": seen,
        "score": float(face.confidence),
        "geometry": landmark_geometry(lm),
        "yaw": yaw,
        "roll": roll,
        "sharpness": sharpness(image, lm) if eyes > 1e-6 else 0.0,
    }
    size = float(min(face.box[2], face.box[3]))
    return FaceQuality(**judged, size=size, pitch=pitch, reason=gate.judge(**judged))


def assess(
    image: np.ndarray,
    faces: Sequence[Face],
    gate: QualityGate = DEFAULT_GATE,
    *,
    detector_max_side: int | None = DEFAULT_MAX_SIDE,
) -> list[FaceQuality]:
    """One :class:`FaceQuality` per face of ``image`` (H, W, 3) uint8, judged by ``gate``.

    ``detector_max_side``: the ``max_side`` of the detector that found ``faces`` (it downscaled the
    photo to it; None: it did not), so the gate knows how big each face was where its score and
    landmarks came from."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return [measure(image, f, gate, detector_max_side=detector_max_side) for f in faces]
