"""Training data: a folder of identities -> cached face chips -> P x K batches as a ``tf.data`` pipeline.

Layout expected: ``ROOT/<person>/<photo>`` (any image :func:`facenet_keras.images.load_image`
reads). Faces are detected and aligned once (:func:`load_chips`) and cached as an ``.npz`` of
chips, so later runs start at once. Splits are always *by identity* (:func:`split_identities`):
validation people are never seen in training, which is what one-shot use requires.

Batches hold P people x K photos each (:func:`pk_dataset`), so every batch contains positives and
negatives for online triplet mining. Light augmentation (horizontal flip, a small random crop /
scale, brightness) runs inside the ``tf.data`` graph.

Also :func:`load_digits_images`, scikit-learn's 8x8 digits as small RGB images, for the one-shot
experiment that runs in CI without any face data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facenet_keras.images import list_identities  # noqa: F401  (re-exported: moved to images)

__all__ = [
    "ChipSet",
    "list_identities",
    "split_identities",
    "load_chips",
    "face_chip",
    "default_cache_dir",
    "pk_indices",
    "pk_dataset",
    "augment_batch",
    "load_digits_images",
]

_CACHE_VERSION = 1


@dataclass
class ChipSet:
    """Aligned face chips with their identities.

    Attributes:
        chips: (N, S, S, 3) uint8 RGB chips.
        labels: (N,) int64 index into ``names``.
        names: identity names (folder names), sorted.
        paths: (N,) photo paths relative to the root, as strings.
        detected: (N,) bool: a face was found and aligned (False: the whole photo was resized).
    """

    chips: np.ndarray
    labels: np.ndarray
    names: list[str]
    paths: list[str] = field(default_factory=list)
    detected: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.labels))

    def subset(self, identities) -> ChipSet:
        """The chips of the given identity names only (labels re-indexed to the new ``names``)."""
        keep_names = sorted(set(identities))
        unknown = set(keep_names) - set(self.names)
        if unknown:
            raise KeyError(f"unknown identities: {sorted(unknown)[:5]}")
        old_to_new = {self.names.index(n): i for i, n in enumerate(keep_names)}
        mask = np.isin(self.labels, list(old_to_new))
        labels = np.array([old_to_new[int(l)] for l in self.labels[mask]], dtype=np.int64)
        paths = [p for p, m in zip(self.paths, mask) if m] if self.paths else []
        detected = None if self.detected is None else self.detected[mask]
        return ChipSet(self.chips[mask], labels, keep_names, paths, detected)


def split_identities(
    names, val_fraction: float = 0.25, seed: int = 0, min_val_photos: dict | None = None
) -> tuple[list[str], list[str]]:
    """Split identity names into (train, validation), never splitting one person's photos.

    Args:
        names: identity names.
        val_fraction: share of identities held out (at least one each side when there are >= 2).
        seed: the shuffle's seed (same seed, same split).
        min_val_photos: optional ``{name: photo count}``; validation people are then drawn only
            among those with 2 or more photos (others can make no same-person pair), the rest train.

    Returns:
        ``(train_names, val_names)``, both sorted, disjoint.
    """
    names = sorted(set(names))
    if len(names) < 2:
        raise ValueError("need at least two identities to split by identity")
    rng = np.random.default_rng(seed)
    eligible = names if min_val_photos is None else [n for n in names if min_val_photos.get(n, 0) >= 2]
    n_val = int(round(val_fraction * len(names)))
    n_val = min(max(n_val, 1), len(eligible), len(names) - 1)
    val = set(rng.permutation(eligible)[:n_val].tolist())
    return sorted(n for n in names if n not in val), sorted(val)


def default_cache_dir() -> Path:
    """Where chip caches live: ``chips/`` in the package's cache folder (``$FACENET_KERAS_HOME``,
    else ``~/.cache/facenet-keras``)."""
    from facenet_keras.weights.cache import cache_dir

    return cache_dir() / "chips"


def face_chip(image: np.ndarray, detector, size: int = 150, padding: float = 0.25) -> tuple[np.ndarray, bool]:
    """One aligned chip of the largest face in ``image``.

    ``image`` is (H, W, 3) uint8 RGB. The detection with the largest box area is cut exactly as the
    recognition pipeline cuts faces (:func:`facenet_keras.pipeline.face_chips`), so an encoder
    trained on these chips sees the same chips at inference. If no face is found the whole image is
    resized to ``size`` x ``size``:
    this is meant for photos that are already tight face crops (e.g. 150x150 chips, where MTCNN
    often misses the face because it fills the frame); on full photos it gives a poor chip, which is
    why the ``detected`` flag is returned.

    Returns:
        ``(chip, detected)``: (size, size, 3) uint8 and whether a face was detected.
    """
    from facenet_keras.faces.pipeline import face_chips

    dets = detector.detect(image)
    if dets:
        best = max(dets, key=lambda d: float(d.area))
        return face_chips(image, [best], size, padding=padding)[0], True
    import tensorflow as tf

    chip = tf.image.resize(image[None].astype(np.float32), (size, size), antialias=True)[0]
    return np.clip(np.round(chip.numpy()), 0, 255).astype(np.uint8), False


def _cache_key(root: Path, files: list[Path], size: int, padding: float) -> str:
    from facenet_keras.faces.pipeline import alignment_id

    h = hashlib.sha256(f"v{_CACHE_VERSION}|{alignment_id()}|{root.resolve()}|{size}|{padding}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def load_chips(
    root, size: int = 150, padding: float = 0.25, cache_dir=None, detector=None, progress: bool = True
) -> ChipSet:
    """Detect, align and cache one chip per photo of a folder of identities.

    Args:
        root: ``ROOT/<person>/<photo>``.
        size, padding: chip geometry (150 / 0.25 is dlib's, what the pretrained encoder wants;
            chips are resized to other encoders' inputs by :func:`pk_dataset`).
        cache_dir: where the ``.npz`` cache goes (default :func:`default_cache_dir`); ``False``
            disables caching. The cache is keyed on the files' names, sizes and times.
        detector: a ``FaceDetector`` (built on demand when a photo must be processed).
        progress: print a line per 20 photos processed.

    Returns:
        A :class:`ChipSet` (photos that cannot be read are skipped with a warning on stderr).
    """
    import sys

    root = Path(root)
    ids = list_identities(root)
    files = [p for photos in ids.values() for p in photos]
    key = _cache_key(root, files, size, padding)
    cache_file = None
    if cache_dir is not False:
        cache_file = Path(cache_dir or default_cache_dir()) / f"chips-{key}.npz"
        if cache_file.is_file():
            with np.load(cache_file, allow_pickle=False) as z:
                return ChipSet(
                    z["chips"],
                    z["labels"].astype(np.int64),
                    [str(n) for n in z["names"]],
                    [str(p) for p in z["paths"]],
                    z["detected"].astype(bool),
                )
    from facenet_keras.images import ImageError, load_image

    if detector is None:
        from facenet_keras.faces.detection import FaceDetector

        detector = FaceDetector()
    names = sorted(ids)
    chips, labels, paths, detected = [], [], [], []
    for i, path in enumerate(files):
        try:
            image = load_image(path)
        except ImageError as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        chip, found = face_chip(image, detector, size, padding)
        chips.append(chip)
        labels.append(names.index(path.parent.name))
        paths.append(str(path.relative_to(root)))
        detected.append(found)
        if progress and (i + 1) % 20 == 0:
            print(f"aligned {i + 1}/{len(files)} photos", file=sys.stderr)
    out = ChipSet(
        np.stack(chips) if chips else np.zeros((0, size, size, 3), np.uint8),
        np.asarray(labels, np.int64),
        names,
        paths,
        np.asarray(detected, bool),
    )
    if cache_file is not None:
        from facenet_keras.files import atomic_write, private_dir

        private_dir(cache_file.parent)
        with atomic_write(cache_file) as f:
            np.savez(
                f,
                chips=out.chips,
                labels=out.labels,
                names=np.asarray(names, dtype=str),
                paths=np.asarray(paths, dtype=str),
                detected=out.detected,
            )
    return out


# ----------------------------------------------------------------------------------------------
# P x K batches


def pk_indices(labels, P: int, K: int, rng: np.random.Generator) -> np.ndarray:
    """One P x K batch: indices of K photos of each of P people (people with >= 2 photos).

    People with fewer than K photos are sampled with replacement (augmentation makes the repeats
    differ); with fewer than P eligible people all of them are used.

    Returns:
        (P' * K,) int64 indices, P' = min(P, eligible people).
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= 2]
    if len(eligible) < 2:
        raise ValueError("P x K sampling needs at least two identities with two or more photos each")
    people = rng.choice(eligible, size=min(P, len(eligible)), replace=False)
    out = []
    for person in people:
        idx = np.flatnonzero(labels == person)
        out.append(rng.choice(idx, size=K, replace=len(idx) < K))
    return np.concatenate(out)


def augment_batch(images, size: int, *, flip: bool = True, max_crop: float = 0.1, brightness: float = 0.1, seed=None):
    """Random light augmentation of a batch, inside the TensorFlow graph.

    Args:
        images: (B, H, W, 3) float32 in 0..255.
        size: output side (the encoder's input size).
        flip: mirror half of the images left-right.
        max_crop: crop a random square of side (1 - u * max_crop) of the image, u ~ U(0, 1), at a
            random position, and resize it to ``size`` (a small random scale and shift).
        brightness: add a random offset in [-brightness, brightness] x 255 per image.

    Returns:
        (B, size, size, 3) float32 in 0..255.
    """
    import tensorflow as tf

    b = tf.shape(images)[0]
    if flip:
        mirror = tf.random.uniform((b,), seed=seed) < 0.5
        images = tf.where(mirror[:, None, None, None], tf.reverse(images, axis=[2]), images)
    side = 1.0 - tf.random.uniform((b,), 0.0, max_crop)
    y0 = tf.random.uniform((b,)) * (1.0 - side)
    x0 = tf.random.uniform((b,)) * (1.0 - side)
    boxes = tf.stack([y0, x0, y0 + side, x0 + side], axis=1)
    images = tf.image.crop_and_resize(images, boxes, tf.range(b), (size, size))
    if brightness:
        images = images + tf.random.uniform((b, 1, 1, 1), -brightness, brightness) * 255.0
    return tf.clip_by_value(images, 0.0, 255.0)


def pk_dataset(
    images,
    labels,
    P: int = 8,
    K: int = 4,
    *,
    size: int | None = None,
    augment: bool = True,
    flip: bool = True,
    max_crop: float = 0.1,
    brightness: float = 0.1,
    seed: int = 0,
):
    """An endless ``tf.data.Dataset`` of P x K batches ``(images, labels)``.

    Args:
        images: (N, H, W, 3) uint8 (or float 0..255) chips, held in memory.
        labels: (N,) integer identities.
        P, K: people per batch and photos per person.
        size: side of the images produced (default: H); resizing happens in the graph.
        augment: apply :func:`augment_batch` (otherwise only resize); flip, max_crop, brightness:
            its settings (turn ``flip`` off for data where mirroring changes the class, e.g. digits).
        seed: the sampler's seed.

    Returns:
        Dataset of ((P*K, size, size, 3) float32 0..255, (P*K,) int32). Use ``steps_per_epoch``.
    """
    import tensorflow as tf

    images = np.asarray(images)
    labels = np.asarray(labels)
    size = int(size or images.shape[1])
    rng = np.random.default_rng(seed)

    def gen():
        while True:
            yield pk_indices(labels, P, K, rng).astype(np.int32)

    table = tf.constant(images)
    label_table = tf.constant(labels.astype(np.int32))
    ds = tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec((None,), tf.int32))

    def load(idx):
        x = tf.cast(tf.gather(table, idx), tf.float32)
        if augment:
            x = augment_batch(x, size, flip=flip, max_crop=max_crop, brightness=brightness)
        elif size != images.shape[1] or images.shape[2] != size:
            x = tf.image.resize(x, (size, size))
        return x, tf.gather(label_table, idx)

    return ds.map(load, num_parallel_calls=1).prefetch(2)


# ----------------------------------------------------------------------------------------------
# scikit-learn digits for the one-shot experiment


def load_digits_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits as RGB images an encoder can take.

    The 8x8 images (values 0..16) are upsampled bilinearly to ``size`` x ``size``, scaled to
    0..255 and repeated over 3 channels.

    Returns:
        ``(images, labels)``: (1797, size, size, 3) float32 in 0..255 and (1797,) int64 digits.
    """
    import tensorflow as tf
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[..., None] * (255.0 / 16.0)
    x = tf.image.resize(x, (size, size), method="bilinear").numpy()
    x = np.clip(np.repeat(x, 3, axis=-1), 0.0, 255.0).astype(np.float32)
    return x, d.target.astype(np.int64)
