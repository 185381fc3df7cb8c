"""Two face encoders fused into one embedding: dlib's ResNet (128-D) and FaceNet's Inception-ResNet-v1 (512-D).

The fused embedding is the concatenation of the two L2-normalised embeddings, weighted:

    f = [sqrt(1 - w) * a / |a|,  sqrt(w) * b / |b|]            (a unit vector, 640-D)

so the squared Euclidean distance between two fused embeddings is the weighted sum of the
encoders' squared distances on the unit sphere, ``(1 - w) d_a^2 + w d_b^2``: one vector per face,
searched like any other embedding. Measured with ``benchmarks/encoder_profiles.py`` on every
pair of ``../shared/data/faces`` (person-disjoint cross-validation) against a weighted sum of
distances, logistic regression on the two distances and the sum of z-normalised distances, it
was a near-tie (AUC 0.999988 against 0.999985, 0.999990 and 0.999994); the z-score sum, checked
once on LFW fold 1, broke 10 of dlib's correct pairs and fixed none, so no fused profile is
offered: this module stays a measured building block, not a product setting.

:data:`FUSION_WEIGHT` was chosen on ``../shared/data/faces/pairs.csv`` only (the weight on a grid
of 0.05 that maximises the ROC's AUC; ties: the middle of the tied range), and the thresholds are
the 10-fold cross-validated ones on the same pairs, as for the default dlib threshold.
Pure numpy: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FUSED_EMBEDDING_SIZE", "FUSED_THRESHOLD", "FUSION_WEIGHT", "fuse", "fused_distance"]

#: Weight w of the Inception-ResNet-v1 part (1 - w goes to dlib's ResNet). Chosen on faces/pairs.csv:
#: AUC 0.999990 for w in 0.20..0.35, the middle taken (dlib alone 0.99998, Inception alone 0.99995); per
#: fold in a nested 10-fold cross-validation it was 0.25 in 7 folds of 10 (0.2 in 2, 0.35 in 1).
FUSION_WEIGHT = 0.25
#: Same person when the Euclidean distance between fused embeddings is <= this: the 10-fold
#: cross-validated threshold at w = 0.25 on faces/pairs.csv is 0.598.
FUSED_THRESHOLD = 0.60
FUSED_EMBEDDING_SIZE = 128 + 512


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms <= 1e-12):
        raise ValueError(f"{name} holds an all-zero embedding, which has no direction to fuse")
    return x / norms


def fuse(emb_a, emb_b, weight: float = FUSION_WEIGHT) -> np.ndarray:
    """Fused unit embeddings (N, Da + Db) float32 from (N, Da) and (N, Db) embeddings of the same faces.

    ``emb_a``: dlib ResNet embeddings (any scale: raw or normalised); ``emb_b``: Inception-ResNet-v1
    embeddings; a single (D,) embedding each gives (Da + Db,). Each is L2-normalised, then scaled
    by ``sqrt(1 - weight)`` and ``sqrt(weight)`` and the two are concatenated.
    Raises ValueError for mismatched counts, non-finite values, zero vectors or a weight outside [0, 1].
    """
    w = float(weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    single = a.ndim == 1 and b.ndim == 1
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"emb_a and emb_b must be (N, Da) and (N, Db) for the same N faces, "
            f"got {np.shape(emb_a)} and {np.shape(emb_b)}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("embeddings must be finite")
    out = np.concatenate([np.sqrt(1.0 - w) * _unit_rows(a, "emb_a"), np.sqrt(w) * _unit_rows(b, "emb_b")], axis=1)
    out = out.astype(np.float32)
    return out[0] if single else out


def fused_distance(dist_a, dist_b, weight: float = FUSION_WEIGHT) -> np.ndarray:
    """The distance between fused embeddings from the encoders' own distances between unit vectors:
    ``sqrt((1 - w) d_a^2 + w d_b^2)`` (equal to ``|fuse(a1, b1) - fuse(a2, b2)|``). NaN stays NaN."""
    w = float(weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    da = np.asarray(dist_a, dtype=np.float64)
    db = np.asarray(dist_b, dtype=np.float64)
    return np.sqrt((1.0 - w) * da**2 + w * db**2)
