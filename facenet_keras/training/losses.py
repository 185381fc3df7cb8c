"""Triplet losses: the course formula, a layer for a three-input Siamese model, and online mining.

The network is not trained to name people but to *place* them: the anchor A must be closer to a
positive P (same person) than to a negative N (another person) by at least a margin ``alpha``::

    L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)

Without the margin the all-zero encoding (every face at the same point) would be a perfect
solution; with it, that encoding costs ``alpha`` per triplet.

Three ways to get triplets:
- explicit (A, P, N) embeddings: :func:`triplet_loss` (a sum over the batch, as in the course) or
  the :class:`TripletLoss` layer inside a three-input model that shares one encoder;
- online mining inside a labelled batch of P people x K photos (no triplets built by hand), with
  :class:`TripletMiningLoss`: ``"all"`` (batch-all: mean over the triplets that still violate the
  margin), ``"hard"`` (batch-hard: per anchor its farthest positive and closest negative) and
  ``"semi-hard"`` (FaceNet: per anchor-positive pair the closest negative that is *farther* than the
  positive, so inside the margin band ``d(a,p) < d(a,n) < d(a,p) + alpha``; when no negative is
  farther, the farthest negative, as in TensorFlow Addons).
:class:`ActiveTriplets` reports how many triplets (or anchors) still carry loss: a metric that
falls towards zero as the margin gets satisfied.

Everything here is pure: tensors in, tensors out (``keras.ops``), no I/O.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "triplet_loss",
    "TripletLoss",
    "pairwise_distances",
    "triplet_masks",
    "mined_triplet_loss",
    "hardest_positive_negative",
    "semi_hard_mask",
    "semi_hard_negatives",
    "TripletMiningLoss",
    "ActiveTriplets",
    "MINING_STRATEGIES",
]

MINING_STRATEGIES = ("all", "hard", "semi-hard")
_BIG = 1e9  # stands for "infinitely far" in masked minima / maxima


def _split_triplet(y_pred):
    """(anchor, positive, negative), each (B, D), from a list/tuple of three or a (B, 3, D) tensor."""
    if isinstance(y_pred, (list, tuple)):
        if len(y_pred) != 3:
            raise ValueError(f"y_pred must hold 3 encodings (anchor, positive, negative), got {len(y_pred)}")
        return tuple(ops.convert_to_tensor(t) for t in y_pred)
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) != 3 or y_pred.shape[1] != 3:
        raise ValueError(f"a y_pred tensor must have shape (B, 3, D), got {tuple(y_pred.shape)}")
    return y_pred[:, 0], y_pred[:, 1], y_pred[:, 2]


def triplet_loss(y_true, y_pred, alpha: float = 0.2):
    """The course's triplet loss, summed over the batch.

    Args:
        y_true: unused (Keras passes labels; triplets carry their own supervision).
        y_pred: anchor, positive and negative encodings: a list/tuple of three (B, D) tensors, or one
            (B, 3, D) tensor stacked in that order.
        alpha: the margin, in squared-distance units (0.2 for unit-norm 128-D encodings).

    Returns:
        A scalar: ``sum_i max(||A_i - P_i||^2 - ||A_i - N_i||^2 + alpha, 0)``.
    """
    del y_true
    anchor, positive, negative = _split_triplet(y_pred)
    pos_dist = ops.sum(ops.square(anchor - positive), axis=-1)
    neg_dist = ops.sum(ops.square(anchor - negative), axis=-1)
    return ops.sum(ops.maximum(pos_dist - neg_dist + alpha, 0.0))


@keras.saving.register_keras_serializable(package="facenet_keras")
class TripletLoss(keras.layers.Layer):
    """Adds the triplet loss of (anchor, positive, negative) embeddings to the model's losses.

    Use it on top of one shared encoder applied to three inputs (weights tied)::

        a, p, n = (keras.Input((96, 96, 3)) for _ in range(3))
        d = TripletLoss(alpha=0.2)([encoder(a), encoder(p), encoder(n)])
        model = keras.Model([a, p, n], d); model.compile("adam"); model.fit([A, P, N], epochs=...)

    Args:
        alpha: the margin (squared-distance units).
        reduction: ``"mean"`` (default; the step size does not depend on the batch size) or
            ``"sum"`` (the course's formula exactly).

    Returns (from ``call``): a (B, 2) tensor of squared distances ``[d(A,P), d(A,N)]``, handy for
    monitoring; the loss itself goes through ``add_loss``.
    """

    def __init__(self, alpha: float = 0.2, reduction: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.alpha = float(alpha)
        self.reduction = reduction

    def call(self, inputs):
        anchor, positive, negative = _split_triplet(inputs)
        pos_dist = ops.sum(ops.square(anchor - positive), axis=-1)
        neg_dist = ops.sum(ops.square(anchor - negative), axis=-1)
        per_triplet = ops.maximum(pos_dist - neg_dist + self.alpha, 0.0)
        loss = ops.mean(per_triplet) if self.reduction == "mean" else ops.sum(per_triplet)
        self.add_loss(loss)
        return ops.stack([pos_dist, neg_dist], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 2)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "reduction": self.reduction}


# ----------------------------------------------------------------------------------------------
# online mining on a labelled batch


def pairwise_distances(embeddings, squared: bool = True):
    """All pairwise distances of a batch of embeddings.

    Args:
        embeddings: (B, D) float tensor.
        squared: squared Euclidean distances (the course's formula) if True, else Euclidean (with a
            gradient that stays finite at zero distance).

    Returns:
        (B, B) float tensor, zero on the diagonal, never negative.
    """
    e = ops.convert_to_tensor(embeddings, dtype="float32")
    sq = ops.sum(ops.square(e), axis=1)
    d2 = ops.expand_dims(sq, 1) - 2.0 * ops.matmul(e, ops.transpose(e)) + ops.expand_dims(sq, 0)
    d2 = ops.maximum(d2, 0.0)
    eye = ops.eye(ops.shape(e)[0], dtype="float32")
    d2 = d2 * (1.0 - eye)  # exact zeros on the diagonal despite round-off
    if squared:
        return d2
    zero = ops.cast(ops.equal(d2, 0.0), "float32")
    return ops.sqrt(d2 + zero * 1e-16) * (1.0 - zero)


def triplet_masks(labels):
    """Which pairs are positives and negatives in a labelled batch.

    Args:
        labels: (B,) (or (B, 1)) integer identity labels.

    Returns:
        ``(positive, negative)``, two (B, B) bool tensors: ``positive[a, p]`` when a != p share a
        label, ``negative[a, n]`` when their labels differ.
    """
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    same = ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))
    not_self = ops.logical_not(ops.cast(ops.eye(ops.shape(labels)[0]), "bool"))
    return ops.logical_and(same, not_self), ops.logical_not(same)


def hardest_positive_negative(labels, embeddings, squared: bool = True):
    """Batch-hard selection: per anchor, the index of its farthest positive and closest negative.

    Returns:
        ``(positive_index, negative_index)``: two (B,) int32 tensors, -1 where the anchor has no
        positive (resp. no negative) in the batch.
    """
    dist = pairwise_distances(embeddings, squared)
    pos, neg = triplet_masks(labels)
    posf, negf = ops.cast(pos, "float32"), ops.cast(neg, "float32")
    hp = ops.argmax(dist * posf - _BIG * (1.0 - posf), axis=1)
    hn = ops.argmin(dist + _BIG * (1.0 - negf), axis=1)
    hp = ops.where(ops.any(pos, axis=1), ops.cast(hp, "int32"), -1)
    hn = ops.where(ops.any(neg, axis=1), ops.cast(hn, "int32"), -1)
    return hp, hn


def semi_hard_mask(labels, embeddings, margin: float = 0.2, squared: bool = True):
    """FaceNet's semi-hard set: triplets whose negative is farther than the positive but inside the margin.

    Returns:
        (B, B, B) bool tensor, True at ``[a, p, n]`` when p is a positive and n a negative of a and
        ``d(a,p) < d(a,n) < d(a,p) + margin``.
    """
    dist = pairwise_distances(embeddings, squared)
    pos, neg = triplet_masks(labels)
    d_ap = ops.expand_dims(dist, 2)
    d_an = ops.expand_dims(dist, 1)
    valid = ops.logical_and(ops.expand_dims(pos, 2), ops.expand_dims(neg, 1))
    band = ops.logical_and(ops.greater(d_an, d_ap), ops.less(d_an, d_ap + margin))
    return ops.logical_and(valid, band)


def _semi_hard_negative_distance(dist, pos, neg):
    """Per (a, p): the chosen negative's distance and index (see :func:`semi_hard_negatives`)."""
    negf = ops.cast(neg, "float32")
    d_ap = ops.expand_dims(dist, 2)  # (a, p, 1)
    d_an = ops.expand_dims(dist, 1)  # (a, 1, n)
    farther = ops.logical_and(ops.expand_dims(neg, 1), ops.greater(d_an, d_ap))  # (a, p, n)
    farther_f = ops.cast(farther, "float32")
    outside = d_an + _BIG * (1.0 - farther_f)  # closest negative farther than the positive
    outside_idx = ops.argmin(outside, axis=2)
    outside_d = ops.min(outside, axis=2)
    inside = dist * negf - _BIG * (1.0 - negf)  # fallback: the farthest negative of a
    inside_idx = ops.argmax(inside, axis=1)
    inside_d = ops.max(inside, axis=1)
    has_outside = ops.any(farther, axis=2)
    b = ops.shape(dist)[0]
    chosen_d = ops.where(has_outside, outside_d, ops.broadcast_to(ops.expand_dims(inside_d, 1), (b, b)))
    chosen_i = ops.where(
        has_outside,
        ops.cast(outside_idx, "int32"),
        ops.broadcast_to(ops.expand_dims(ops.cast(inside_idx, "int32"), 1), (b, b)),
    )
    return chosen_d, chosen_i


def semi_hard_negatives(labels, embeddings, squared: bool = True):
    """The negative the semi-hard loss pairs with each anchor-positive pair.

    For each valid (a, p): the closest negative with ``d(a,n) > d(a,p)``; if none is farther than
    the positive, the farthest negative of a (as TensorFlow Addons does).

    Returns:
        (B, B) int32 tensor of negative indices, -1 where (a, p) is not a positive pair or a has no
        negative.
    """
    dist = pairwise_distances(embeddings, squared)
    pos, neg = triplet_masks(labels)
    _, idx = _semi_hard_negative_distance(dist, pos, neg)
    ok = ops.logical_and(pos, ops.expand_dims(ops.any(neg, axis=1), 1))
    return ops.where(ok, idx, -1)


def mined_triplet_loss(labels, embeddings, strategy: str = "semi-hard", margin: float = 0.2, squared: bool = True):
    """Triplet loss mined online from a labelled batch.

    Args:
        labels: (B,) integer identities (P people x K photos each works best).
        embeddings: (B, D) float tensor.
        strategy: ``"all"``, ``"hard"`` or ``"semi-hard"`` (see the module docstring).
        margin: alpha, in the units of the distance (squared or not).
        squared: use squared Euclidean distances (course) or plain Euclidean ones.

    Returns:
        ``(loss, active)``: the scalar loss (a mean over the contributing terms) and the number of
        terms that carry loss (float scalar): triplets for "all", anchors for "hard",
        anchor-positive pairs for "semi-hard".
    """
    if strategy not in MINING_STRATEGIES:
        raise ValueError(f"unknown mining strategy {strategy!r}; choose one of {MINING_STRATEGIES}")
    dist = pairwise_distances(embeddings, squared)
    pos, neg = triplet_masks(labels)
    posf, negf = ops.cast(pos, "float32"), ops.cast(neg, "float32")
    if strategy == "all":
        valid = ops.expand_dims(posf, 2) * ops.expand_dims(negf, 1)
        per = ops.relu(ops.expand_dims(dist, 2) - ops.expand_dims(dist, 1) + margin) * valid
        active = ops.sum(ops.cast(ops.greater(per, 1e-16), "float32"))
        return ops.sum(per) / ops.maximum(active, 1.0), active
    if strategy == "hard":
        hardest_pos = ops.max(dist * posf, axis=1)
        hardest_neg = ops.min(dist + _BIG * (1.0 - negf), axis=1)
        anchor_ok = ops.cast(ops.logical_and(ops.any(pos, axis=1), ops.any(neg, axis=1)), "float32")
        per = ops.relu(hardest_pos - hardest_neg + margin) * anchor_ok
        active = ops.sum(ops.cast(ops.greater(per, 1e-16), "float32"))
        return ops.sum(per) / ops.maximum(ops.sum(anchor_ok), 1.0), active
    # semi-hard
    neg_d, _ = _semi_hard_negative_distance(dist, pos, neg)
    pair_ok = posf * ops.expand_dims(ops.cast(ops.any(neg, axis=1), "float32"), 1)
    per = ops.relu(dist - neg_d + margin) * pair_ok
    active = ops.sum(ops.cast(ops.greater(per, 1e-16), "float32"))
    return ops.sum(per) / ops.maximum(ops.sum(pair_ok), 1.0), active


@keras.saving.register_keras_serializable(package="facenet_keras")
class TripletMiningLoss(keras.losses.Loss):
    """A Keras loss ``(labels, embeddings) -> scalar`` that mines triplets inside each batch.

    ``model.compile(loss=TripletMiningLoss("semi-hard", margin=0.2), metrics=[ActiveTriplets(...)])``
    then ``model.fit(images, integer_labels)`` trains an encoder directly, with no triplets built
    by hand. Batches should hold several photos of each person (P x K sampling).
    """

    def __init__(
        self, strategy: str = "semi-hard", margin: float = 0.2, squared: bool = True, name: str | None = None, **kwargs
    ):
        if strategy not in MINING_STRATEGIES:
            raise ValueError(f"unknown mining strategy {strategy!r}; choose one of {MINING_STRATEGIES}")
        kwargs.pop("reduction", None)
        super().__init__(name=name or f"triplet_{strategy.replace('-', '_')}", reduction="none", **kwargs)
        self.strategy, self.margin, self.squared = strategy, float(margin), bool(squared)

    def call(self, y_true, y_pred):
        loss, _ = mined_triplet_loss(y_true, y_pred, self.strategy, self.margin, self.squared)
        return loss

    def get_config(self):
        return {"name": self.name, "strategy": self.strategy, "margin": self.margin, "squared": self.squared}


@keras.saving.register_keras_serializable(package="facenet_keras")
class ActiveTriplets(keras.metrics.Mean):
    """Mean per batch of the number of mined terms that still carry loss (see :func:`mined_triplet_loss`).

    Falls towards 0 as training satisfies the margin; if it is 0 from the start the margin is too
    small (or the batch has too few photos per person).
    """

    def __init__(
        self,
        strategy: str = "semi-hard",
        margin: float = 0.2,
        squared: bool = True,
        name: str = "active_triplets",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.strategy, self.margin, self.squared = strategy, float(margin), bool(squared)

    def update_state(self, y_true, y_pred, sample_weight=None):
        _, active = mined_triplet_loss(y_true, y_pred, self.strategy, self.margin, self.squared)
        return super().update_state(active)

    def get_config(self):
        return {**super().get_config(), "strategy": self.strategy, "margin": self.margin, "squared": self.squared}
