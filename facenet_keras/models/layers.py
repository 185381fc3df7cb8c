"""Small registered Keras layers that the face models need and Keras does not ship.

Each layer is serialisable (``get_config``) and registered under the package name
``facenet_keras``, so a model that uses them saves to ``.keras`` and loads back with
``keras.saving.load_model`` once this module has been imported (importing
``facenet_keras.models`` does it).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

__all__ = ["InputNormalization", "ChannelAffine", "ZeroPadAdd", "L2Normalize"]

_PACKAGE = "facenet_keras"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InputNormalization(keras.layers.Layer):
    """Pixel scaling done inside the model: ``(x - mean) * scale`` per channel.

    Input: (..., C) pixels in 0..255 (any numeric dtype; cast to the layer's dtype).
    Output: same shape, float. For dlib's ResNet ``mean`` is the RGB mean
    (122.782, 117.001, 104.298) and ``scale`` is 1/256 (dlib divides by 256, not 255).
    """

    def __init__(self, mean: Sequence[float], scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.scale = float(scale)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        return (x - mean) * ops.cast(self.scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "scale": self.scale}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ChannelAffine(keras.layers.Layer):
    """Per-channel scale and shift, ``y = x * gamma + beta`` over the last axis.

    This is a batch normalisation with its statistics folded into ``gamma`` and ``beta`` (dlib's
    ``affine`` layer). Both are trainable variables of shape (C,), so the model can be
    fine-tuned; initialised to the identity (gamma = 1, beta = 0).
    """

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        return inputs * self.gamma + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ZeroPadAdd(keras.layers.Layer):
    """Adds two tensors of possibly different shapes, as dlib's ``add_prev`` does.

    Inputs: a list of two (N, H, W, C) tensors with static H, W, C. The output has, in every
    dimension, the larger of the two sizes; the missing elements of the smaller tensor count as
    zeros (that is, it is padded at the bottom, the right and in the extra channels). With equal
    shapes this is a plain addition.
    """

    def build(self, input_shape):
        a, b = (tuple(s) for s in input_shape)
        if len(a) != len(b):
            raise ValueError(f"ZeroPadAdd needs inputs of equal rank, got {a} and {b}")
        if any(d is None for d in a[1:] + b[1:]):
            raise ValueError(f"ZeroPadAdd needs static non-batch dimensions, got {a} and {b}")
        target = [max(x, y) for x, y in zip(a[1:], b[1:])]
        self._pads = [[[0, 0]] + [[0, t - d] for t, d in zip(target, shape[1:])] for shape in (a, b)]

    def call(self, inputs):
        a, b = inputs
        pa, pb = self._pads
        if any(p[1] for p in pa):
            a = ops.pad(a, pa)
        if any(p[1] for p in pb):
            b = ops.pad(b, pb)
        return a + b

    def compute_output_shape(self, input_shape):
        a, b = input_shape
        return (a[0],) + tuple(max(x, y) for x, y in zip(a[1:], b[1:]))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class L2Normalize(keras.layers.Layer):
    """Scales each vector along ``axis`` to unit Euclidean length: (N, D) -> (N, D).

    ``epsilon`` bounds the squared norm from below, so an all-zero vector stays finite.
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        sq = ops.sum(ops.square(inputs), axis=self.axis, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(sq, self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
