"""Batch normalisation folded into the linear layer before it: arrays in, arrays out.

At inference a batch normalisation is a per-channel affine map, ``y * s + t`` with
``s = gamma / sqrt(var + eps)`` and ``t = beta - mean * s``. After a convolution or a dense layer
(with nothing between them) it can be folded into that layer's kernel and bias, so the network
makes one pass over the activations instead of two: the converters fold every such pair.
"""

from __future__ import annotations

import numpy as np

__all__ = ["batchnorm_affine", "fold_affine"]


def batchnorm_affine(gamma, beta, mean, variance, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """A batch normalisation's inference map as (scale, shift), float32, so that ``y = x * scale + shift``."""
    gamma, beta, mean, variance = (np.asarray(a, np.float64) for a in (gamma, beta, mean, variance))
    scale = gamma / np.sqrt(variance + float(epsilon))
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def fold_affine(kernel, bias, scale, shift) -> tuple[np.ndarray, np.ndarray]:
    """A Keras kernel and bias (None: no bias) that compute ``layer(x) * scale + shift`` in one layer.

    ``kernel`` in Keras' layout, output channels last: Conv2D (kh, kw, in, out), Dense (in, out),
    DepthwiseConv2D (kh, kw, in, multiplier), whose output channel ``c * multiplier + m`` is
    ``kernel[..., c, m]``. ``scale`` and ``shift`` have one entry per output channel.
    """
    kernel = np.asarray(kernel, np.float64)
    scale, shift = np.asarray(scale, np.float64).reshape(-1), np.asarray(shift, np.float64).reshape(-1)
    out_shape = kernel.shape[-1:] if kernel.shape[-1] == scale.size else kernel.shape[-2:]
    if int(np.prod(out_shape)) != scale.size or shift.size != scale.size:
        raise ValueError(f"a kernel {kernel.shape} cannot absorb {scale.size} per-channel scales")
    bias = np.zeros(scale.size) if bias is None else np.asarray(bias, np.float64).reshape(-1)
    folded = kernel * scale.reshape(out_shape)
    return folded.astype(np.float32), (bias * scale + shift).astype(np.float32)
