"""Is the face in a short clip a live person, or a photo (or a screen) held up to the camera?

Two passive cues, from dlib's 68 landmarks on every frame (:func:`measure_face`):

- **parallax**: the landmarks of a flat photo, however it is moved, tilted or turned, move from one
  frame to another by one planar homography; those of a head turning or talking do not. The cue is
  the residual of the best homography between frames (RMS, in inter-ocular distances), high
  percentile over frame pairs (:func:`parallax_residuals`);
- **blinks**: eye aspect ratio (EAR, Soukupova & Cech 2016) dips quickly and comes back
  (:func:`eye_aspect_ratio`, :func:`find_blinks`). A photo does not blink.

A clip passes the passive check when its parallax score reaches :data:`PARALLAX_THRESHOLD` or it
shows a blink. Neither stops a *replayed video* of the person (a real head turning, on a screen):
that is what the **active challenge** is for: a random sequence of prompts (turn left, turn right,
blink), each to be done inside its time window, checked from head yaw (:func:`head_yaw`) and blinks.
A recording made before the prompts were drawn cannot follow them.

Not defended: a good 3D mask (it has parallax and follows prompts; only a texture or depth model
would catch it), a replay without the challenge, a real-time deepfake driven to follow the prompts.
A user-supplied passive anti-spoofing model can be plugged in with ``model=`` (see
:class:`SpoofModel`); none ships with the package and nothing is ever downloaded.

Coordinates are pixels; times seconds; yaw degrees, positive when the person turns to their own
left (the nose moves towards the image's right in an unmirrored camera).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "PARALLAX_THRESHOLD",
    "PROMPTS",
    "TURN_DEGREES",
    "Challenge",
    "FaceMeasurements",
    "LivenessResult",
    "Prompt",
    "SpoofModel",
    "assess",
    "check_liveness",
    "eye_aspect_ratio",
    "find_blinks",
    "head_yaw",
    "homography",
    "measure_face",
    "parallax_residuals",
]

# Thresholds, fixed on generated attacks of seeds 1000-1049 and never on the tests' or the
# benchmark's seeds (benchmarks/liveness_errors.py --calibrate prints what they were chosen from).
#: parallax score (homography residual, inter-ocular distances) at and above which a face is 3-D:
#: on seeds 1000-1049 the photo attacks scored at most 0.060 (median 0.023), the real clip's 2 s
#: windows 0.176-0.208; 0.1 sits between them (about equally far from both in ratio).
PARALLAX_THRESHOLD = 0.1
#: an EAR dip counts as a blink when it falls below this fraction of the clip's median EAR ...
BLINK_DEPTH = 0.7
#: ... and lasts at most this long (longer: eyes closed or looking down, not a blink).
BLINK_MAX_SECONDS = 0.5
#: a turn prompt is met when the head turns this many degrees the asked way within its window.
TURN_DEGREES = 15.0
#: the shortest stretch of one face the cues are computed on ...
MIN_SECONDS = 1.5
#: ... and the fewest frames showing it (fewer cannot give a parallax or a blink, however long).
MIN_FACE_FRAMES = 10
#: how often detection runs, in seconds of the clip (landmarks run on every frame, from boxes
#: interpolated between): every 3rd frame at 30 fps, as calibrated; every frame at 10 fps, where
#: a head turning moves the box too far between every 3rd frame to be linked by overlap.
_DETECT_SECONDS = 0.1
PROMPTS = ("turn_left", "turn_right", "blink")

# 68-point indices (iBUG layout)
_RIGHT_EYE = np.arange(36, 42)  # the person's right eye: on the image's left
_LEFT_EYE = np.arange(42, 48)
# A generic head for the yaw fit (millimetres, x to the person's left (image right), y up, z towards
# the camera): nose tip, chin, outer eye corners, mouth corners, jaw ends at the ear. Rough average
# adult proportions; only the yaw's sign and size matter here.
_MODEL_POINTS = {
    30: (0.0, 0.0, 0.0),
    8: (0.0, -63.6, -12.5),
    36: (-43.3, 32.7, -26.0),
    45: (43.3, 32.7, -26.0),
    48: (-28.9, -28.9, -24.1),
    54: (28.9, -28.9, -24.1),
    0: (-70.0, 20.0, -95.0),
    16: (70.0, 20.0, -95.0),
}


# ----------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LivenessResult:
    """``live``: the verdict; ``score``: in [0, 1], the evidence (0.5 and above passes the passive
    cues); ``reasons``: one plain line per finding, failures first; ``cues``: the numbers behind it."""

    live: bool
    score: float
    reasons: tuple[str, ...]
    cues: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"live": self.live, "score": round(self.score, 4), "reasons": list(self.reasons), "cues": self.cues}


@dataclass(frozen=True)
class FaceMeasurements:
    """One face followed through a clip: ``times`` (T,) s, ``points`` (T, 68, 2) px, NaN where the
    face was not found; ``frames`` how many frames the clip had."""

    times: np.ndarray
    points: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return np.isfinite(self.points[:, 0, 0])

    @functools.cached_property
    def parallax(self) -> tuple[float, int]:
        """(90th percentile of :func:`parallax_residuals`, number of frame pairs behind it)."""
        res = parallax_residuals(self.points, self.times)
        return (float(np.percentile(res, 90)) if res.size else 0.0), int(res.size)

    @functools.cached_property
    def blinks(self) -> list[float]:
        """:func:`find_blinks` of the clip."""
        return find_blinks(eye_aspect_ratio(self.points, per_eye=True), self.times)

    @functools.cached_property
    def yaw(self) -> np.ndarray:
        """:func:`head_yaw` per frame."""
        return head_yaw(self.points)

    def window(self, start: float, end: float) -> FaceMeasurements:
        """The measurements with start <= time < end."""
        keep = (self.times >= start) & (self.times < end)
        return FaceMeasurements(self.times[keep], self.points[keep])


@dataclass(frozen=True)
class Prompt:
    """One instruction of a challenge: ``action`` (turn_left / turn_right / blink) to be done between
    ``start`` and ``end`` seconds of the clip."""

    action: str
    start: float
    end: float

    def __post_init__(self):
        if self.action not in PROMPTS:
            raise ValueError(f"unknown prompt {self.action!r}; expected one of {', '.join(PROMPTS)}")
        if not self.end > self.start >= 0:
            raise ValueError(f"a prompt's window must have 0 <= start < end, got {self.start}..{self.end}")


@dataclass(frozen=True)
class Challenge:
    """A sequence of prompts, shown to the person one after another while the clip is recorded."""

    prompts: tuple[Prompt, ...]

    @classmethod
    def random(
        cls, n: int = 3, *, window: float = 1.5, start: float = 0.5, rng: np.random.Generator | int | None = None
    ) -> Challenge:
        """``n`` prompts drawn at random (no action twice in a row), each with a ``window`` s to be
        done in, the first starting at ``start`` s. Draw it *after* the camera opens, never before."""
        rng = np.random.default_rng(rng)
        actions: list[str] = []
        for _ in range(n):
            choices = [a for a in PROMPTS if not actions or a != actions[-1]]
            actions.append(str(rng.choice(choices)))
        return cls(tuple(Prompt(a, start + i * window, start + (i + 1) * window) for i, a in enumerate(actions)))

    @property
    def duration(self) -> float:
        return max(p.end for p in self.prompts)

    def to_dict(self) -> dict:
        return {"prompts": [{"action": p.action, "start": p.start, "end": p.end} for p in self.prompts]}


class SpoofModel:
    """The hook for a user-supplied passive anti-spoofing model (none ships, nothing is downloaded).

    ``SpoofModel(path, preprocess=None)`` loads a Keras model file (``.keras``, safe mode) taking a
    batch of face crops (N, S, S, 3) float32 in [0, 1] (S from the model's input shape) and giving
    (N,) or (N, 1) P(live). The clip's faces (their boxes, a 20% margin) are scored and averaged; a
    clip passes when that mean is >= ``threshold``. ``preprocess`` maps the uint8 crops to the
    model's input if it expects something else. Any callable with the same contract can be used
    instead of a file.
    """

    def __init__(
        self, path_or_callable, *, threshold: float = 0.5, preprocess: Callable[[np.ndarray], np.ndarray] | None = None
    ):
        self.threshold = float(threshold)
        self.preprocess = preprocess
        if callable(path_or_callable):
            self._predict = path_or_callable
            self.size = None
            return
        path = Path(path_or_callable)
        if not path.is_file():
            raise FileNotFoundError(f"anti-spoofing model not found: {path}")
        import keras

        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        self.size = int(model.input_shape[1])
        self._predict = lambda x: model.predict(x, verbose=0)

    def score(self, crops: np.ndarray) -> float:
        """Mean P(live) of face crops (N, S, S, 3) uint8."""
        x = self.preprocess(crops) if self.preprocess else crops.astype(np.float32) / 255.0
        return float(np.mean(np.asarray(self._predict(x), np.float64).reshape(len(crops), -1)[:, -1]))


# ----------------------------------------------------------------------------------- pure cues
def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homographies (normalised DLT) mapping points src to dst: (P, 2) -> (3, 3), or
    batched (K, P, 2) -> (K, 3, 3). The DLT's null vector comes from the 9x9 normal matrix (eigh):
    small, batched, and free of the multithreaded SVD's overhead on a busy machine."""
    single = np.ndim(src) == 2
    src = np.asarray(src, np.float64).reshape(-1, *np.shape(src)[-2:])
    dst = np.asarray(dst, np.float64).reshape(src.shape)

    def norm(p):  # (K, P, 2) -> (K, 3, 3): centroid to the origin, mean distance sqrt(2)
        c = p.mean(axis=1)
        s = np.sqrt(2) / np.maximum(np.linalg.norm(p - c[:, None], axis=-1).mean(axis=1), 1e-12)
        t = np.zeros((len(p), 3, 3))
        t[:, 0, 0] = t[:, 1, 1] = s
        t[:, :2, 2] = -s[:, None] * c
        t[:, 2, 2] = 1.0
        return t

    ts, td = norm(src), norm(dst)
    a = np.einsum("kij,kpj->kpi", ts[:, :2, :2], src) + ts[:, None, :2, 2]
    b = np.einsum("kij,kpj->kpi", td[:, :2, :2], dst) + td[:, None, :2, 2]
    zeros, ones = np.zeros(a.shape[:2]), np.ones(a.shape[:2])
    ax, ay, bx, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    rows_x = np.stack([-ax, -ay, -ones, zeros, zeros, zeros, bx * ax, bx * ay, bx], axis=-1)
    rows_y = np.stack([zeros, zeros, zeros, -ax, -ay, -ones, by * ax, by * ay, by], axis=-1)
    m = np.concatenate([rows_x, rows_y], axis=1)  # (K, 2P, 9)
    _, vecs = np.linalg.eigh(np.einsum("kpi,kpj->kij", m, m))
    h = vecs[:, :, 0].reshape(-1, 3, 3)  # eigenvector of the smallest eigenvalue
    h = np.linalg.inv(td) @ h @ ts
    h = h / np.where(np.abs(h[:, 2:3, 2:3]) > 1e-12, h[:, 2:3, 2:3], 1.0)
    return h[0] if single else h


def _apply(h: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Points (..., P, 2) through homographies (..., 3, 3)."""
    q = np.einsum("...ij,...pj->...pi", h[..., :, :2], p) + h[..., None, :, 2]
    return q[..., :2] / q[..., 2:3]


def interocular(points: np.ndarray) -> np.ndarray:
    """Distance between the eyes' centres, (T,) from (T, 68, 2)."""
    return np.linalg.norm(points[:, _LEFT_EYE].mean(axis=1) - points[:, _RIGHT_EYE].mean(axis=1), axis=-1)


def parallax_residuals(
    points: np.ndarray, times: np.ndarray, *, min_gap: float = 0.2, max_gap: float = 1.5, max_pairs: int = 200
) -> np.ndarray:
    """For frame pairs between ``min_gap`` and ``max_gap`` s apart (both with a face): the RMS residual
    of the best homography between their 68 landmarks, in inter-ocular distances. (K,) float64."""
    ok = np.flatnonzero(np.isfinite(points[:, 0, 0]))
    pairs = [(i, j) for a, i in enumerate(ok) for j in ok[a + 1 :] if min_gap <= times[j] - times[i] <= max_gap]
    if len(pairs) > max_pairs:  # evenly thinned, deterministic
        pairs = [pairs[k] for k in np.linspace(0, len(pairs) - 1, max_pairs).astype(int)]
    if not pairs:
        return np.zeros(0)
    i, j = np.array(pairs).T
    iod = interocular(points)
    r = _apply(homography(points[i], points[j]), points[i]) - points[j]
    rms = np.sqrt((r**2).sum(axis=-1).mean(axis=-1))
    return rms / np.maximum(0.5 * (iod[i] + iod[j]), 1e-6)


def eye_aspect_ratio(points: np.ndarray, per_eye: bool = False) -> np.ndarray:
    """EAR per frame, (|p2-p6| + |p3-p5|) / (2 |p1-p4|) of each eye: the mean of both eyes (T,), or
    (T, 2) for (the person's right eye, left eye) with ``per_eye``."""

    def ear(eye):
        p = points[:, eye]
        v = np.linalg.norm(p[:, 1] - p[:, 5], axis=-1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=-1)
        return v / np.maximum(2 * np.linalg.norm(p[:, 0] - p[:, 3], axis=-1), 1e-6)

    both = np.stack([ear(_RIGHT_EYE), ear(_LEFT_EYE)], axis=1)
    return both if per_eye else both.mean(axis=1)


def find_blinks(
    ear: np.ndarray,
    times: np.ndarray,
    *,
    depth: float = BLINK_DEPTH,
    max_seconds: float = BLINK_MAX_SECONDS,
    settle: float = 0.25,
) -> list[float]:
    """Times (s) of blinks from per-eye EAR (T, 2) (or (T,) for one value per frame): a run of at
    least two frames where *both* eyes are below ``depth`` x their median over the clip, lasting at
    most ``max_seconds``, with both eyes open (above the midpoint between that level and the median)
    on every frame 0.1 to ``settle`` s before and after it. Frames without a face (NaN) are neither."""
    ear = np.asarray(ear, np.float64)
    ear = ear[:, None] if ear.ndim == 1 else ear
    ok = np.all(np.isfinite(ear), axis=1)
    if ok.sum() < 5:
        return []
    median = np.median(ear[ok], axis=0)
    closed = ok & np.all(ear < depth * median, axis=1)
    opened = ok & np.all(ear > (1 + depth) / 2 * median, axis=1)
    blinks, i, n = [], 0, len(ear)
    while i < n:
        if not closed[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and closed[j + 1]:
            j += 1
        # the eyelid passes through half-closed on its way: look at the frames 0.1-``settle`` s away
        before = (times >= times[i] - settle) & (times < times[i] - 0.1)
        after = (times > times[j] + 0.1) & (times <= times[j] + settle)
        if (
            j > i
            and times[j] - times[i] <= max_seconds
            and before.any()
            and after.any()
            and opened[before].all()
            and opened[after].all()
        ):
            blinks.append(float(times[i + int(np.argmin(ear[i : j + 1].mean(axis=1)))]))
        i = j + 1
    return blinks


def head_yaw(points: np.ndarray) -> np.ndarray:
    """Head yaw per frame (T,) in degrees from a weak-perspective fit of a generic 3-D head to eight
    of the 68 landmarks; positive = turned to the person's own left; NaN where no face."""
    idx = list(_MODEL_POINTS)
    model = np.array([_MODEL_POINTS[i] for i in idx], np.float64)
    model -= model.mean(axis=0)
    pinv = np.linalg.pinv(model)  # (3, P)
    out = np.full(len(points), np.nan)
    for t, p in enumerate(points):
        if not np.isfinite(p[0, 0]):
            continue
        q = p[idx] - p[idx].mean(axis=0)
        q[:, 1] *= -1  # image y points down, the model's up
        m = (pinv @ q).T  # (2, 3): q ~ model @ m.T
        r1 = m[0] / max(np.linalg.norm(m[0]), 1e-12)
        out[t] = np.degrees(np.arctan2(r1[2], r1[0]))
    # The model's x runs to the person's left, which is the image's right: a turn to their left
    # brings the nose tip (z > 0) towards the image's right, i.e. r1[2] > 0.
    return out


# ----------------------------------------------------------------------------------- measuring
def measure_face(frames, times=None, *, fps: float = 30.0, detector=None, predictor=None) -> FaceMeasurements:
    """The main face's 68 landmarks on every frame of a short clip.

    frames: (T, H, W, 3) uint8 or a sequence of such arrays; times: (T,) seconds (default i / fps).
    Detection (MTCNN) runs every 0.1 s of the clip and follows one face (the largest, then the one
    overlapping it; when it is lost, the largest face again starts a new stretch); only the longest
    continuous stretch of one face is kept, so a cut to another shot or person never joins it.
    Boxes are interpolated between detections; the 68-point model runs on every frame of the stretch.
    The points are NaN elsewhere.
    """
    from facenet_keras.faces.detection import FaceDetector
    from facenet_keras.faces.landmarks import load_shape_predictor_68, rect_from_landmarks
    from facenet_keras.live.tracking import iou_matrix

    frames = list(frames) if not isinstance(frames, np.ndarray) else frames
    n = len(frames)
    if n == 0:
        raise ValueError("liveness needs a clip: got no frames")
    times = np.arange(n) / float(fps) if times is None else np.asarray(times, np.float64)
    if len(times) != n:
        raise ValueError(f"got {n} frames but {len(times)} time stamps")
    detector = detector or FaceDetector(min_face_size=40)
    predictor = predictor or load_shape_predictor_68()
    step = float(np.median(np.diff(times))) if n > 1 else 0.0  # seconds between frames
    every = max(1, round(_DETECT_SECONDS / step)) if step > 0 else 1
    keys = sorted(set(range(0, n, every)) | {n - 1})
    rects = np.full((n, 4), np.nan)
    segment = np.full(n, -1)  # which continuous stretch of one face each detection belongs to
    box, current, misses = None, -1, 0
    for k in keys:
        dets = detector.detect(frames[k])
        boxes = np.array([d.box for d in dets]).reshape(-1, 4)
        pick = None
        if box is not None and len(dets):
            iou = iou_matrix(box[None], boxes)[0]
            if iou.max() >= 0.2:
                pick = int(np.argmax(iou))
        if pick is None:
            misses += 1
            if box is not None and misses <= 2 and not len(dets):
                continue  # a missed detection or two: the same face may come back
            if not len(dets):
                box = None
                continue
            pick, current = int(np.argmax(boxes[:, 2] * boxes[:, 3])), current + 1  # a new face (or shot)
        misses = 0
        box = boxes[pick]
        rects[k] = rect_from_landmarks(dets[pick].landmarks)
        segment[k] = current
    if current >= 0:  # keep the longest stretch of one face
        ids, counts = np.unique(segment[segment >= 0], return_counts=True)
        rects[segment != ids[np.argmax(counts)]] = np.nan
    found = np.flatnonzero(np.isfinite(rects[:, 0]))
    points = np.full((n, 68, 2), np.nan)
    if found.size == 0:
        return FaceMeasurements(times, points)
    # interpolate the box between detections no more than two detection steps apart
    for a, b in itertools.pairwise(found):
        if b - a <= 2 * every:
            w = ((np.arange(a + 1, b) - a) / (b - a))[:, None]
            rects[a + 1 : b] = (1 - w) * rects[a] + w * rects[b]
    for t in np.flatnonzero(np.isfinite(rects[:, 0])):
        points[t] = predictor.predict(np.asarray(frames[t]), rects[t], rounded=False)
    return FaceMeasurements(times, points)


# ----------------------------------------------------------------------------------- deciding
def _check_prompt(prompt: Prompt, times, yaw, blinks) -> tuple[bool, str]:
    """Whether one prompt was done in its window: a blink there, or a head turn there of at least
    TURN_DEGREES in the asked direction (the largest rise (left) or fall (right) of yaw within the
    window, from wherever the head was: the person may start from any pose)."""
    span = f"{prompt.start:.1f}-{prompt.end:.1f} s"
    if prompt.action == "blink":
        hit = [b for b in blinks if prompt.start <= b < prompt.end]
        return bool(hit), (f"blink at {hit[0]:.2f} s (asked {span})" if hit else f"no blink in {span} as asked")
    what = prompt.action.replace("_", " ")
    inside = (times >= prompt.start) & (times < prompt.end) & np.isfinite(yaw)
    if inside.sum() < 2:
        return False, f"no face in {span} to {what}"
    y = (1.0 if prompt.action == "turn_left" else -1.0) * yaw[inside]
    turned = float(np.max(y - np.minimum.accumulate(y)))
    ok = turned >= TURN_DEGREES
    return ok, f"{what}: {turned:.0f} deg in {span}" + ("" if ok else f" (needs {TURN_DEGREES:.0f})")


def assess(
    m: FaceMeasurements,
    challenge: Challenge | None = None,
    *,
    spoof_model: SpoofModel | None = None,
    spoof_score: float | None = None,
) -> LivenessResult:
    """The verdict from measurements (pure): passive cues, then the challenge's prompts if any."""
    present = m.present
    n = len(m.times)
    cues: dict = {"frames": int(n), "face_frames": int(present.sum())}
    reasons: list[str] = []
    fails: list[str] = []
    seen = m.times[present]
    span = float(seen[-1] - seen[0]) if seen.size else 0.0
    cues["face_seconds"] = round(span, 3)
    if present.sum() < MIN_FACE_FRAMES:  # each condition that failed, in its own words
        fails.append(
            f"one face was found in only {int(present.sum())} of {n} frames: need at least "
            f"{MIN_FACE_FRAMES} frames of one face"
        )
    if span < MIN_SECONDS:
        fails.append(f"one face was followed for only {span:.1f} s: need at least {MIN_SECONDS:g} s of one face")
    if fails:
        return LivenessResult(False, 0.0, tuple(fails), cues)
    (parallax, pairs), blinks, yaw = m.parallax, m.blinks, m.yaw
    cues.update(
        parallax=round(parallax, 4),
        parallax_pairs=pairs,
        blinks=[round(b, 3) for b in blinks],
        yaw_range=round(float(np.nanpercentile(yaw, 95) - np.nanpercentile(yaw, 5)), 2),
    )
    score = min(1.0, 0.5 * parallax / PARALLAX_THRESHOLD)
    if blinks:
        score = max(score, 0.75)
    if parallax >= PARALLAX_THRESHOLD:
        reasons.append(
            f"3-D motion: landmarks depart from a flat plane by {parallax:.3f} IOD (>= {PARALLAX_THRESHOLD})"
        )
    if blinks:
        reasons.append(f"{len(blinks)} blink(s), at " + ", ".join(f"{b:.2f} s" for b in blinks))
    if not reasons:
        fails.append(
            f"looks flat: landmarks fit one plane to {parallax:.3f} IOD (< {PARALLAX_THRESHOLD}) and no blink: a photo?"
        )
    if spoof_model is not None and spoof_score is not None:
        cues["spoof_model"] = round(spoof_score, 4)
        if spoof_score < spoof_model.threshold:
            fails.append(f"the anti-spoofing model gives P(live) {spoof_score:.2f} < {spoof_model.threshold}")
        score = (
            min(score, spoof_score / max(2 * spoof_model.threshold, 1e-9))
            if spoof_score < spoof_model.threshold
            else score
        )
    if challenge is not None:
        met = 0
        for p in challenge.prompts:
            ok, line = _check_prompt(p, m.times, yaw, blinks)
            met += ok
            (reasons if ok else fails).append(("" if ok else "challenge failed: ") + line)
        cues["challenge"] = {**challenge.to_dict(), "met": met}
        score = min(score, met / len(challenge.prompts))
    live = not fails
    if not live:
        score = min(score, 0.49)
    return LivenessResult(live, float(score), tuple(fails + reasons), cues)


def check_liveness(
    frames,
    challenge: Challenge | None = None,
    *,
    times=None,
    fps: float = 30.0,
    spoof_model: SpoofModel | None = None,
    detector=None,
) -> LivenessResult:
    """Is the one face in ``frames`` (a few seconds of one person, (T, H, W, 3) uint8 or a sequence of
    such frames) live? Passive cues (parallax, blinks) and, with ``challenge``, its prompts in their
    time windows (``times`` (T,) s, default i / ``fps``). ``spoof_model``: an optional
    user-supplied :class:`SpoofModel` whose verdict must also pass."""
    m = measure_face(frames, times, fps=fps, detector=detector)
    spoof_score = None
    if spoof_model is not None:
        spoof_score = _spoof_score(spoof_model, frames, m)
    return assess(m, challenge, spoof_model=spoof_model, spoof_score=spoof_score)


def _spoof_score(model: SpoofModel, frames, m: FaceMeasurements) -> float:
    from PIL import Image

    size = model.size or 128
    crops = []
    for t in np.flatnonzero(m.present)[:: max(1, int(m.present.sum()) // 10)]:
        p = m.points[t]
        (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
        cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, 1.2 * max(x1 - x0, y1 - y0)
        im = Image.fromarray(np.asarray(frames[t], np.uint8))
        crops.append(
            np.asarray(
                im.crop((int(cx - s / 2), int(cy - s / 2), int(cx + s / 2), int(cy + s / 2))).resize((size, size))
            )
        )
    return model.score(np.stack(crops))
