"""Face chips -> 128-D embeddings with dlib's ResNet in Keras, batched.

``load_encoder()`` builds the pretrained model once per argument set (later calls return the same
object). ``encode_chips(chips)`` runs it over (N, 150, 150, 3) RGB chips in 0..255 in fixed-size
batches through one ``tf.function`` per model, so there is no per-call ``predict`` overhead and no
retracing.

Distances: with ``normalize=False`` (default) embeddings are dlib's raw descriptors (norm ~1.45)
and dlib's rule is "same person if Euclidean distance < 0.6"; with ``normalize=True`` they are
unit vectors (distance in [0, 2]) and thresholds must be set on that scale.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facenet_keras.models.dlib_resnet import EMBEDDING_SIZE, INPUT_SHAPE, dlib_resnet

__all__ = ["load_encoder", "encode_chips", "pass_size", "CHIP_SIZE", "EMBEDDING_SIZE"]

CHIP_SIZE = INPUT_SHAPE[0]

# One compiled inference function per model, keyed weakly so that the cache never keeps a model
# alive (the one shared cache here that cannot be a functools.cache: its keys are models).
_functions: weakref.WeakKeyDictionary[keras.Model, tf.types.experimental.GenericFunction] = weakref.WeakKeyDictionary()
_functions_lock = threading.Lock()


def _weights_key(weights) -> tuple:
    if weights is None or (isinstance(weights, str) and weights == "pretrained"):
        return ("pretrained",)
    path = Path(weights).expanduser().resolve()
    try:
        stat = path.stat()
        return ("path", str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        return ("path", str(path))


def load_encoder(weights: str | os.PathLike[str] | None = None, normalize: bool | None = None) -> keras.Model:
    """The face encoder: a ``keras.Model`` mapping (N, 150, 150, 3) pixels 0..255 to (N, 128) (an
    ONNX encoder: its own chip size and width).

    Args:
        weights: ``None`` or ``"pretrained"`` for dlib's pretrained weights (converted once and
            cached on disk), a path to a ``.weights.h5`` / dlib ``.dat`` file, or the path of an
            ArcFace-family ``.onnx`` encoder you bring (:mod:`facenet_keras.models.onnx_encoder`:
            112x112 ArcFace chips, no threshold).
        normalize: L2-normalise the embeddings (unit sphere); None: the encoder's own default,
            dlib's raw scale for dlib's ResNet, unit vectors for an ONNX encoder.

    The model is cached per (weights, normalize): repeated calls return the same object.
    Never returns random weights; raises ``MissingWeightsError`` (with the pip command) if the
    pretrained weights are not installed.
    """
    if weights is not None and Path(weights).suffix.lower() == ".onnx":
        from facenet_keras.models.onnx_encoder import load_onnx_encoder

        return load_onnx_encoder(weights, normalize=True if normalize is None else bool(normalize))
    return _load_encoder(_weights_key(weights), bool(normalize))


@functools.cache
def _load_encoder(key: tuple, normalize: bool) -> keras.Model:
    weights = "pretrained" if key == ("pretrained",) else key[1]
    return dlib_resnet(weights, normalize=normalize)


def _chip_shape(model: keras.Model) -> tuple:
    """The (H, W, C) a model takes; None where its input size is open (fully convolutional)."""
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3:
        raise ValueError(f"an encoder takes (N, H, W, C) images, but this model's input is {model.input_shape}")
    return shape


def _infer_fn(model: keras.Model):
    """One traced ``tf.function`` per model: (B, H, W, 3) float32 -> (B, D) float32.

    The batch dimension is left open in the signature, so no batch size ever retraces it.
    """
    with _functions_lock:
        fn = _functions.get(model)
        if fn is not None:
            return fn
        spec = tf.TensorSpec(shape=(None, *_chip_shape(model)), dtype=tf.float32, name="chips")
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function(input_signature=[spec])
        def infer(x):
            return tf.cast(model_ref()(x, training=False), tf.float32)

        fn = _functions[model] = infer
        return fn


def _validate_chips(chips, shape: tuple[int, int, int] = INPUT_SHAPE) -> np.ndarray:
    """Chips as an (N, H, W, 3) array (uint8, or float in 0..255), or a clear error."""
    arr = np.asarray(chips)
    if arr.ndim == 3:
        arr = arr[np.newaxis]
    if arr.ndim != 4 or any(want is not None and got != want for got, want in zip(arr.shape[1:], shape)):
        h, w, c = (s or "any" for s in shape)
        raise ValueError(
            f"chips must have shape (N, {h}, {w}, {c}) or ({h}, {w}, {c}) (RGB face chips "
            f"aligned like dlib's get_face_chip), got {np.shape(chips)}"
        )
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"chips must be uint8 RGB (or float with values in 0..255), got dtype {arr.dtype}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError("chips contain NaN or infinite values")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"float chips must hold pixel values in 0..255, got range [{arr.min()}, {arr.max()}]")
    return arr


def pass_size(model: keras.Model, batch_size: int) -> int:
    """Chips per forward pass: ``batch_size``, capped by the model's ``facenet_keras_pass_size``.

    A network whose first layers work at high resolution with few channels (SFace: 112x112 with 32
    and 64 channels) is bound by memory traffic there: at 32 chips a pass its activations leave the
    CPU's caches; with the cores shared, 8 chips a pass ran 1.7-2x as fast, at the cost of about 10%
    on an idle machine (docs/performance.md, "The accurate profile's encoders").
    """
    return max(1, min(int(batch_size), int(getattr(model, "facenet_keras_pass_size", batch_size))))


def encode_chips(chips, model: keras.Model | None = None, batch_size: int = 32) -> np.ndarray:
    """Embed face chips: (N, 150, 150, 3) or (150, 150, 3) RGB 0..255 -> (N, 128) float32.

    Args:
        chips: uint8 RGB chips (float arrays in 0..255 are accepted too); a single chip gives N=1.
            Another model with a static input shape takes chips of its own (H, W, 3).
        model: the encoder (default: ``load_encoder()``, dlib's raw scale).
        batch_size: chips per forward pass, at most the model's own ``facenet_keras_pass_size``
            where it has one (SFace: 8; see :func:`pass_size`). Inputs larger than one pass run in
            passes of exactly that size (the last padded with zeros and the padding dropped), so
            every call after the first reuses the same shapes; smaller inputs run as one pass.

    Returns an (N, D) float32 array (D = 128 for dlib's ResNet); an empty input gives (0, D).
    Raises ValueError (shape, NaN, range) or TypeError (dtype) naming what was expected.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model = load_encoder() if model is None else model
    shape = _chip_shape(model)
    arr = _validate_chips(chips, shape)
    dim = int(model.output_shape[-1]) if model.output_shape[-1] else EMBEDDING_SIZE
    n = arr.shape[0]
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    infer = _infer_fn(model)
    step = pass_size(model, batch_size)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, step):
        batch = arr[start : start + step].astype(np.float32)
        m = batch.shape[0]
        if m < step and n > step:  # keep the steady-state batch shape
            batch = np.concatenate([batch, np.zeros((step - m, *arr.shape[1:]), np.float32)])
        out[start : start + m] = infer(tf.constant(batch)).numpy()[:m]
    return out
