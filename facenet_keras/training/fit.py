"""Train or fine-tune an encoder with triplet losses; evaluate what it learned on unseen identities.

Two ways to train:
- online mining (:func:`train_encoder`): the encoder itself is fitted on P x K labelled batches
  with :class:`~facenet_keras.losses.TripletMiningLoss` (batch-all, batch-hard or semi-hard);
- explicit triplets (:func:`triplet_training_model`): a three-input Siamese model that shares one
  encoder (weights tied) and adds the course's triplet loss through the ``TripletLoss`` layer.

Progress is reported with Keras's own progress bars; after each epoch
:class:`VerificationCallback` measures the verification accuracy on held-out *identities*.
Checkpoints: the encoder is saved after every epoch, and an interrupted run resumes where it stopped
(Keras ``BackupAndRestore``) when started again with the same checkpoint folder.

Evaluation helpers are pure numpy: :func:`verification_accuracy` (best-threshold accuracy over all
pairs) and :func:`one_shot_accuracy` (nearest enrolled example, one per class).
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from facenet_keras.identity.search import pairwise_distances
from facenet_keras.models.encoder import encode_chips
from facenet_keras.training.losses import ActiveTriplets, TripletLoss, TripletMiningLoss

__all__ = [
    "embed",
    "verification_accuracy",
    "one_shot_accuracy",
    "VerificationCallback",
    "EncoderCheckpoint",
    "compile_for_mining",
    "train_encoder",
    "triplet_training_model",
]


def embed(model: keras.Model, images, batch_size: int = 128) -> np.ndarray:
    """Embeddings of images already at the model's input size: (N, H, W, 3) 0..255 -> (N, D) float32.

    The same compiled inference as every other encoder call (:func:`facenet_keras.models.encoder.encode_chips`).
    """
    return encode_chips(images, model=model, batch_size=batch_size)


def _pair_distances(embeddings, labels):
    """Distances and same-label flags of every pair i < j."""
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    return pairwise_distances(embeddings, embeddings)[i, j], labels[i] == labels[j]


def verification_accuracy(embeddings, labels) -> float:
    """Best-threshold balanced accuracy over every pair of the given embeddings.

    Pairs are all (i < j); "same" when the labels match. Accuracy is the mean of the same-pair and
    different-pair accuracies (so the many different pairs do not dominate), at the Euclidean
    distance threshold that maximises it. An optimistic (threshold chosen on the same pairs) but
    stable per-epoch signal; the k-fold protocol lives in ``facenet_keras.evaluation``.

    Returns:
        A float in [0.5, 1], or NaN when there is no same pair or no different pair.
    """
    d, same = _pair_distances(embeddings, labels)
    if same.all() or not same.any():
        return float("nan")
    order = np.argsort(d, kind="stable")
    d, same = d[order], same[order]
    n_same, n_diff = same.sum(), (~same).sum()
    tp = np.concatenate([[0], np.cumsum(same)])  # same pairs accepted with threshold after k pairs
    fp = np.concatenate([[0], np.cumsum(~same)])
    acc = 0.5 * (tp / n_same + (n_diff - fp) / n_diff)
    return float(acc.max())


def one_shot_accuracy(support, support_labels, queries, query_labels) -> float:
    """Nearest-neighbour classification of ``queries`` against enrolled ``support`` embeddings.

    Args:
        support: (S, D) embeddings of the enrolled examples (one per class for one-shot).
        support_labels: (S,) their classes.
        queries: (Q, D) embeddings to classify; query_labels: (Q,) their true classes.

    Returns:
        The fraction of queries whose nearest enrolled example (Euclidean) has their class.
    """

    pred = np.asarray(support_labels)[np.argmin(pairwise_distances(queries, support), axis=1)]
    return float(np.mean(pred == np.asarray(query_labels)))


def one_shot_trials(encoder, images, labels, classes, trials: int = 50, seed: int = 0) -> float:
    """Mean one-shot accuracy on ``classes`` over ``trials`` random draws of one enrolled example
    per class (the rest of those classes' images are the queries)."""
    mask = np.isin(labels, classes)
    emb, lab = embed(encoder, images[mask]), np.asarray(labels)[mask]
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(trials):
        support = np.array([rng.choice(np.flatnonzero(lab == c)) for c in classes])
        query = np.setdiff1d(np.arange(len(lab)), support)
        accs.append(one_shot_accuracy(emb[support], lab[support], emb[query], lab[query]))
    return float(np.mean(accs))


class VerificationCallback(keras.callbacks.Callback):
    """After each epoch: verification accuracy of ``encoder`` on held-out identities, into the logs.

    Args:
        encoder: the model being trained (or the one sharing its layers).
        images: (N, H, W, 3) validation images at the encoder's input size, 0..255.
        labels: (N,) their identities (people never seen in training).
        name: the log key (default ``val_verification_accuracy``), shown by the progress bar's
            epoch summary and written by ``CSVLogger``.
    """

    def __init__(self, encoder, images, labels, name: str = "val_verification_accuracy", verbose: int = 1):
        super().__init__()
        self.encoder, self.images, self.labels = encoder, np.asarray(images, np.float32), np.asarray(labels)
        self.key, self.verbose = name, verbose
        self.history: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        acc = verification_accuracy(embed(self.encoder, self.images), self.labels)
        self.history.append(acc)
        if logs is not None:
            logs[self.key] = acc
        if self.verbose:
            print(
                f"epoch {epoch + 1}: {self.key} = {acc:.4f} on {len(np.unique(self.labels))} held-out identities",
                file=sys.stderr,
            )


class EncoderCheckpoint(keras.callbacks.Callback):
    """Saves the encoder (not the training wrapper, so it loads without any loss) after each epoch.

    Files: ``folder/encoder-epoch{NNN}.keras``; ``keep`` most recent are kept (0 keeps all).
    """

    def __init__(self, encoder, folder, keep: int = 2):
        super().__init__()
        self.encoder, self.folder, self.keep = encoder, Path(folder), int(keep)

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save(self.folder / f"encoder-epoch{epoch + 1:03d}.keras")
        if self.keep > 0:
            for old in sorted(self.folder.glob("encoder-epoch*.keras"))[: -self.keep]:
                old.unlink()


def compile_for_mining(
    encoder: keras.Model,
    mining: str = "semi-hard",
    margin: float = 0.2,
    squared: bool = True,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
) -> keras.Model:
    """A training wrapper around ``encoder`` (same layers, same weights), compiled for online mining.

    The wrapper, not the encoder, carries the optimizer and the loss, so the encoder can be saved
    and reused without them. Loss :class:`TripletMiningLoss`, metric :class:`ActiveTriplets`.

    ``optimizer``: ``"adam"`` (from scratch) or ``"sgd"`` (SGD with momentum 0.9, for fine-tuning a
    pretrained encoder: Adam moves every weight by about the learning rate on each step whatever
    its gradient, and one Adam step at 1e-5 already moves dlib's embeddings by ~0.18, a third of
    its 0.6 threshold; SGD moves them in proportion to the loss, which is small on a good encoder).
    """
    trainer = keras.Model(encoder.inputs, encoder.outputs, name=f"{encoder.name}_trainer")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    opt = (
        keras.optimizers.Adam(learning_rate)
        if optimizer == "adam"
        else keras.optimizers.SGD(learning_rate, momentum=0.9)
    )
    trainer.compile(
        optimizer=opt,
        loss=TripletMiningLoss(mining, margin, squared),
        metrics=[ActiveTriplets(mining, margin, squared)],
        jit_compile=False,
    )  # XLA compiles an Inception net for minutes on CPU, for no gain
    return trainer


def train_encoder(
    encoder: keras.Model,
    dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    mining: str = "semi-hard",
    margin: float = 0.2,
    squared: bool = True,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    validation=None,
    checkpoint_dir=None,
    callbacks=(),
    verbose: int = 1,
) -> keras.callbacks.History:
    """Fit ``encoder`` in place on labelled batches with online triplet mining.

    Args:
        encoder: (N, H, W, 3) 0..255 -> (N, D) model; its weights are updated.
        dataset: a ``tf.data.Dataset`` of (images, integer labels) batches, e.g.
            :func:`facenet_keras.data.pk_dataset` (endless; ``steps_per_epoch`` bounds an epoch).
        epochs, steps_per_epoch: training length.
        mining: ``"semi-hard"``, ``"hard"`` or ``"all"``; margin: alpha in the distance's units;
            squared: squared Euclidean distances (course) or plain ones.
        learning_rate, optimizer: ``"adam"`` to train from scratch, ``"sgd"`` (momentum 0.9) to
            fine-tune a pretrained encoder (see :func:`compile_for_mining`).
        validation: optional ``(images, labels)`` of held-out identities at the encoder's input
            size: their verification accuracy is logged after each epoch.
        checkpoint_dir: optional folder: encoder saved each epoch, ``log.csv`` appended, and
            ``backup/`` lets an interrupted run resume from its last finished epoch.
        callbacks: more Keras callbacks.
        verbose: Keras's progress-bar setting.

    Returns:
        The Keras ``History`` (loss, active_triplets, val_verification_accuracy per epoch).
    """
    trainer = compile_for_mining(encoder, mining, margin, squared, learning_rate, optimizer)
    cbs = []
    if validation is not None:
        cbs.append(VerificationCallback(encoder, validation[0], validation[1], verbose=0))
    if checkpoint_dir is not None:
        folder = Path(checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        cbs += [
            EncoderCheckpoint(encoder, folder),
            keras.callbacks.CSVLogger(str(folder / "log.csv"), append=True),
            keras.callbacks.BackupAndRestore(str(folder / "backup")),
        ]
    cbs += list(callbacks)
    return trainer.fit(
        dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=cbs, shuffle=False, verbose=verbose
    )


def triplet_training_model(encoder: keras.Model, alpha: float = 0.2, reduction: str = "mean") -> keras.Model:
    """A three-input Siamese model (anchor, positive, negative) sharing ``encoder`` (weights tied).

    Compile it with an optimizer only (the ``TripletLoss`` layer adds the loss) and fit it on
    ``[anchors, positives, negatives]``; the output is the (B, 2) squared distances
    ``[d(A,P), d(A,N)]``.
    """
    shape = tuple(encoder.input_shape[1:])
    inputs = [keras.Input(shape, name=n) for n in ("anchor", "positive", "negative")]
    dists = TripletLoss(alpha=alpha, reduction=reduction, name="triplet_loss")([encoder(x) for x in inputs])
    return keras.Model(inputs, dists, name=f"{encoder.name}_triplet")
