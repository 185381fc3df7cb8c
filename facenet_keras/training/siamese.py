"""Face verification as binary classification on pairs (DeepFace-style Siamese head).

Instead of thresholding a distance, learn ``P(same | x1, x2)`` from the two embeddings::

    abs:   p = sigmoid( sum_k w_k |f(x1)_k - f(x2)_k| + b )
    chi2:  p = sigmoid( sum_k w_k (f(x1)_k - f(x2)_k)^2 / (f(x1)_k + f(x2)_k) + b )

The features are symmetric in (x1, x2), so the decision does not depend on the order. The head is
trained on pairs labelled 1 (same person) / 0 (different people) from *precomputed* embeddings (the
encoder stays frozen), with the log loss, so its outputs are probabilities that can be checked for
calibration (:func:`brier_score`, :func:`expected_calibration_error`).

Chi-square was made for non-negative features (DeepFace's are ReLU outputs); dlib's embeddings are
signed, so the denominator here is ``|f1_k + f2_k| + eps`` to keep it defined and positive.

Features are standardised (a ``keras.layers.Normalization`` adapted on the training pairs) before
the single sigmoid unit: the model is the same logistic form, re-parameterised, and trains in a
few hundred full-batch steps whatever the embedding's scale.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

__all__ = [
    "PairFeatures",
    "pair_features",
    "build_siamese_head",
    "SiameseClassifier",
    "brier_score",
    "expected_calibration_error",
    "FEATURE_KINDS",
]

FEATURE_KINDS = ("abs", "chi2")


def pair_features(e1, e2, kind: str = "abs", eps: float = 1e-6):
    """Symmetric pair features: (N, D), (N, D) -> (N, D).

    ``"abs"``: |e1 - e2|; ``"chi2"``: (e1 - e2)^2 / (|e1 + e2| + eps).
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {FEATURE_KINDS}")
    e1 = ops.convert_to_tensor(e1, dtype="float32")
    e2 = ops.convert_to_tensor(e2, dtype="float32")
    if kind == "abs":
        return ops.abs(e1 - e2)
    return ops.square(e1 - e2) / (ops.abs(e1 + e2) + eps)


@keras.saving.register_keras_serializable(package="facenet_keras")
class PairFeatures(keras.layers.Layer):
    """Layer form of :func:`pair_features`: ``[e1, e2]`` -> (N, D) symmetric features."""

    def __init__(self, kind: str = "abs", eps: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        if kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; choose one of {FEATURE_KINDS}")
        self.kind, self.eps = kind, float(eps)

    def call(self, inputs):
        e1, e2 = inputs
        return pair_features(e1, e2, self.kind, self.eps)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "eps": self.eps}


def build_siamese_head(dim: int = 128, kind: str = "abs", l2: float = 1e-3) -> keras.Model:
    """The head: inputs ``emb1``, ``emb2`` (N, dim) -> (N, 1) probability of "same person".

    Layers: :class:`PairFeatures` -> ``Normalization`` (adapt it before training) -> ``Dense(1,
    sigmoid)`` with an L2 penalty ``l2`` on the weights.
    """
    e1 = keras.Input((dim,), name="emb1")
    e2 = keras.Input((dim,), name="emb2")
    f = PairFeatures(kind, name="pair_features")([e1, e2])
    f = keras.layers.Normalization(name="standardize")(f)
    p = keras.layers.Dense(
        1, activation="sigmoid", kernel_regularizer=keras.regularizers.L2(l2), name="same_probability"
    )(f)
    return keras.Model([e1, e2], p, name=f"siamese_{kind}")


def _split_pairs(pairs, e2=None):
    if e2 is not None:
        a, b = np.asarray(pairs, np.float32), np.asarray(e2, np.float32)
    elif isinstance(pairs, (tuple, list)) and len(pairs) == 2:
        a, b = (np.asarray(p, np.float32) for p in pairs)
    else:
        arr = np.asarray(pairs, np.float32)
        if arr.ndim != 3 or arr.shape[1] != 2:
            raise ValueError(f"pairs must be (e1, e2) or an (N, 2, D) array, got shape {arr.shape}")
        a, b = arr[:, 0], arr[:, 1]
    if a.ndim == 1:
        a, b = a[None], b[None]
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"the two sides of the pairs must be (N, D) each, got {a.shape} and {b.shape}")
    return a, b


class SiameseClassifier:
    """A trainable "same person?" probability on top of a frozen encoder's embeddings.

    >>> clf = SiameseClassifier(kind="abs").fit(e1, e2, same)     # same: (N,) 0/1
    >>> clf.predict_proba((q1, q2))                               # (M,) P(same)
    >>> clf.decide(q1, q2)                                        # (M,) bool, P >= threshold

    Args:
        dim: embedding size.
        kind: ``"abs"`` or ``"chi2"`` features.
        l2: weight penalty (the training sets are small: keep some).
        threshold: probability above which :meth:`decide` says "same" (0.5: the Bayes rule when
            the training pairs' class balance matches the use).
    """

    def __init__(
        self,
        dim: int = 128,
        kind: str = "abs",
        l2: float = 1e-3,
        threshold: float = 0.5,
        model: keras.Model | None = None,
    ):
        self.kind, self.threshold = kind, float(threshold)
        self.model = model if model is not None else build_siamese_head(dim, kind, l2)

    def fit(
        self, e1, e2, same, *, epochs: int = 400, learning_rate: float = 0.05, verbose: int = 0, seed: int = 0
    ) -> SiameseClassifier:
        """Train on labelled pairs: e1, e2 (N, D) embeddings; same (N,) 1 = same person, 0 = not.

        ``epochs`` full-batch Adam steps on the binary cross-entropy, features standardised on these
        pairs first. The steps run inside compiled chunks (``steps_per_execution``), so a few hundred
        of them take about a second.
        """
        import tensorflow as tf

        a, b = _split_pairs(e1, e2)
        y = np.asarray(same, np.float32).reshape(-1, 1)
        if len(y) != len(a):
            raise ValueError(f"{len(a)} pairs but {len(y)} labels")
        if y.min() == y.max():
            raise ValueError("training pairs must include both same-person and different-person pairs")
        keras.utils.set_random_seed(seed)
        norm = self.model.get_layer("standardize")
        norm.adapt(np.asarray(pair_features(a, b, self.kind)))
        chunk = max(1, min(100, int(epochs)))
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", steps_per_execution=chunk
        )
        data = tf.data.Dataset.from_tensors(((a, b), y)).repeat()
        self.model.fit(data, epochs=1, steps_per_epoch=int(epochs), verbose=verbose, shuffle=False)
        return self

    def predict_proba(self, pairs, e2=None) -> np.ndarray:
        """P(same) for each pair: ``pairs`` is (e1, e2) of (N, D) each, or (N, 2, D); returns (N,)."""
        a, b = _split_pairs(pairs, e2)
        p = self.model([a, b], training=False)
        return np.asarray(p, np.float64).reshape(-1)

    def decide(self, e1, e2=None) -> np.ndarray:
        """(N,) bool: probability >= ``threshold``. A drop-in decision rule for verification."""
        return self.predict_proba(e1, e2) >= self.threshold

    def __call__(self, e1, e2) -> tuple[bool, float]:
        """One pair (D,), (D,) -> ``(same, probability)``, the signature verify-style code can call."""
        p = float(self.predict_proba(np.asarray(e1)[None], np.asarray(e2)[None])[0])
        return p >= self.threshold, p

    def save(self, path) -> Path:
        """Save the head as a ``.keras`` file (reload with :meth:`load`)."""
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"save to a .keras file, got {path}")
        self.model.save(path)
        return path

    @classmethod
    def load(cls, path, threshold: float = 0.5) -> SiameseClassifier:
        """Load a classifier saved by :meth:`save` (the decision threshold is a use-time choice)."""
        model = keras.saving.load_model(Path(path), compile=False)
        return cls(kind=model.get_layer("pair_features").kind, threshold=threshold, model=model)


def brier_score(probabilities, labels) -> float:
    """Mean squared error of probabilities against 0/1 outcomes (0 is perfect, 0.25 = always 0.5)."""
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(labels, np.float64)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(probabilities, labels, bins: int = 10) -> float:
    """ECE: over equal-width probability bins, the pair-weighted mean |mean predicted - observed rate|."""
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(labels, np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / len(p))
