"""How usable a face is: size, sharpness and pose, from the detection and the aligned chip (pure numpy).

Stored with every indexed face so a user (or a later issue) can prefer sharp frontal faces for
contact sheets and enrolment. Pose comes from the five landmarks, not from a 3-D fit: good enough
to tell a frontal face from a profile, not an angle to quote in degrees (except the roll).
"""

from __future__ import annotations

import numpy as np

__all__ = ["face_quality", "sharpness", "pose"]


def sharpness(chip: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey chip (S, S, 3) uint8: low = blurred.
    On the aligned chip, so faces of any size in the photo are measured at the same scale."""
    grey = np.asarray(chip, np.float64)
    if grey.ndim == 3:
        grey = grey @ np.array([0.299, 0.587, 0.114])
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4.0 * grey[1:-1, 1:-1]
    return float(lap.var())


def pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) from five landmarks (5, 2): left eye, right eye, nose, mouth left, mouth right.

    In the face's own frame (rotated so the eyes are level): yaw is the nose's horizontal offset from
    the midline between eye centre and mouth centre, pitch its vertical offset from halfway between
    eyes and mouth, both in eye distances (0 = frontal, about +-0.3 for a clearly turned face); roll
    is the eye line's angle in degrees."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = p
    eyes = (eye_l + eye_r) / 2.0
    mouth = (mouth_l + mouth_r) / 2.0
    dx, dy = eye_r - eye_l
    span = float(np.hypot(dx, dy))
    if span < 1e-6:
        return 0.0, 0.0, 0.0
    roll = float(np.degrees(np.arctan2(dy, dx)))
    c, s = dx / span, dy / span
    rot = np.array([[c, s], [-s, c]])  # into the frame where the eye line is horizontal
    n, m = rot @ (nose - eyes), rot @ (mouth - eyes)
    yaw = (n[0] - m[0] / 2.0) / span
    pitch = (n[1] - m[1] / 2.0) / span
    return float(yaw), float(pitch), roll


def face_quality(box, landmarks, chip) -> dict:
    """``{"size": shorter box side in px, "sharpness": ..., "yaw": ..., "pitch": ..., "roll": ...}``."""
    yaw, pitch, roll = pose(landmarks)
    return {"size": float(min(box[2], box[3])), "sharpness": sharpness(chip), "yaw": yaw, "pitch": pitch, "roll": roll}
