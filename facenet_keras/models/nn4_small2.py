"""The course's small Inception face encoder, OpenFace's NN4.small2, for training from scratch.

96x96 RGB in (pixel values 0..255, rescaled inside the model), 128-D L2-normalised embedding out,
about 3.74M parameters at ``width=1``. Channels-last and built from plain Keras layers only (no
custom objects needed to reload a saved model). It follows OpenFace's ``nn4.small2`` definition:

    conv 7x7/2 (64) - max pool 3/2 - conv 1x1 (64) - conv 3x3 (192) - max pool 3/2
    inception 3a (256) - 3b (320) - 3c (640, /2)
    inception 4a (640) - 4e (1024, /2)
    inception 5a (736) - 5b (736)
    global average pool - dense 128 - L2 normalisation

Every convolution is followed by batch-norm and ReLU. Differences from the course's channels-first
port: the pooling branches use stride 1 with "same" padding (as OpenFace does) instead of stride 2
followed by zero-padding back to size, OpenFace's L2 pooling is an average pool, and the final 3x3
average pool is a global one, so other input sizes (e.g. 32x32 for small experiments) also work.
``width`` scales every channel count (``width=0.25`` gives a ~0.25M-parameter model for tests).
"""

from __future__ import annotations

import keras
from keras import layers

__all__ = ["nn4_small2", "NN4_SMALL2_INPUT_SIZE"]

NN4_SMALL2_INPUT_SIZE = 96


def _conv_bn(x, filters, kernel, strides=1, name=None, momentum=0.99):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _inception(x, name, c, *, bn, n1x1=None, n3x3=None, n5x5=None, pool="max", pool_proj=None, strides=1):
    """One Inception module: parallel 1x1, 1x1->3x3, 1x1->5x5 and pool(->1x1) branches, concatenated.

    ``n3x3``/``n5x5`` are (reduce, out) pairs; ``strides=2`` makes it a reduction module (no 1x1
    branch, the pool branch keeps its channels).
    """
    branches = []
    if n1x1:
        branches.append(_conv_bn(x, c(n1x1), 1, name=f"{name}_1x1", momentum=bn))
    if n3x3:
        b = _conv_bn(x, c(n3x3[0]), 1, name=f"{name}_3x3_reduce", momentum=bn)
        branches.append(_conv_bn(b, c(n3x3[1]), 3, strides=strides, name=f"{name}_3x3", momentum=bn))
    if n5x5:
        b = _conv_bn(x, c(n5x5[0]), 1, name=f"{name}_5x5_reduce", momentum=bn)
        branches.append(_conv_bn(b, c(n5x5[1]), 5, strides=strides, name=f"{name}_5x5", momentum=bn))
    pool_layer = layers.MaxPooling2D if pool == "max" else layers.AveragePooling2D
    b = pool_layer(3, strides=strides, padding="same", name=f"{name}_pool")(x)
    if pool_proj:
        b = _conv_bn(b, c(pool_proj), 1, name=f"{name}_pool_proj", momentum=bn)
    branches.append(b)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)


def nn4_small2(
    input_shape=(NN4_SMALL2_INPUT_SIZE, NN4_SMALL2_INPUT_SIZE, 3),
    embedding_dim: int = 128,
    width: float = 1.0,
    bn_momentum: float = 0.99,
    name: str = "nn4_small2",
) -> keras.Model:
    """Build an untrained NN4.small2 encoder.

    Args:
        input_shape: (H, W, 3); 96x96 is the reference, anything from 32x32 up works.
        embedding_dim: size of the output embedding.
        width: multiplier on every channel count (1.0 = the published model, ~3.74M parameters).
        bn_momentum: batch-norm moving-average momentum; use ~0.9 for short runs (a few hundred
            steps), or inference-mode statistics lag far behind the trained weights.
        name: the model's name.

    Returns:
        A functional ``keras.Model``: (None, H, W, 3) floats in 0..255 -> (None, embedding_dim),
        unit L2 norm.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")

    def c(n):
        return max(1, int(round(n * width)))

    inp = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inp)
    x = _conv_bn(x, c(64), 7, strides=2, name="conv1", momentum=bn_momentum)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _conv_bn(x, c(64), 1, name="conv2", momentum=bn_momentum)
    x = _conv_bn(x, c(192), 3, name="conv3", momentum=bn_momentum)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    x = _inception(
        x, "inception_3a", c, bn=bn_momentum, n1x1=64, n3x3=(96, 128), n5x5=(16, 32), pool="max", pool_proj=32
    )
    x = _inception(
        x, "inception_3b", c, bn=bn_momentum, n1x1=64, n3x3=(96, 128), n5x5=(32, 64), pool="avg", pool_proj=64
    )
    x = _inception(x, "inception_3c", c, bn=bn_momentum, n3x3=(128, 256), n5x5=(32, 64), pool="max", strides=2)
    x = _inception(
        x, "inception_4a", c, bn=bn_momentum, n1x1=256, n3x3=(96, 192), n5x5=(32, 64), pool="avg", pool_proj=128
    )
    x = _inception(x, "inception_4e", c, bn=bn_momentum, n3x3=(160, 256), n5x5=(64, 128), pool="max", strides=2)
    x = _inception(x, "inception_5a", c, bn=bn_momentum, n1x1=256, n3x3=(96, 384), pool="avg", pool_proj=96)
    x = _inception(x, "inception_5b", c, bn=bn_momentum, n1x1=256, n3x3=(96, 384), pool="max", pool_proj=96)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(embedding_dim, name="dense_layer")(x)
    out = layers.UnitNormalization(name="l2_normalize")(x)
    return keras.Model(inp, out, name=name)
