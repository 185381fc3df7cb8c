"""VGG feature extractors for style transfer: named-layer activations from pretrained weights.

The architecture is ``keras.applications.VGG19`` (or VGG16) without the top, with the same layer
names (``block1_conv1`` ... ``block5_conv4``), truncated after the deepest layer asked for: the
layers after it cost time and change nothing. The model takes RGB images in [0, 1] of any size,
shape (batch, H, W, 3) float32, and applies the weights' own input convention inside (the
registered :class:`VGGPreprocess` layer), so callers never think about BGR or ImageNet means.
It returns a dict ``{layer name: activation (batch, H_l, W_l, C_l)}``.

``pooling="avg"`` replaces max pooling by average pooling, as Gatys et al. and the course suggest
(smoother gradients, slightly nicer images).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import keras
import numpy as np

from .weights import VGG16_CONV_LAYERS, VGG19_CONV_LAYERS, VGGWeights, load_vgg16_weights, load_vgg19_weights

CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)
MATCONVNET_RGB_MEANS = (123.68, 116.779, 103.939)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


def vgg_layout(arch: str = "vgg19") -> list[str]:
    """Layer names in order, pools included: ``[block1_conv1, block1_conv2, block1_pool, ...]``."""
    convs = VGG19_CONV_LAYERS if arch == "vgg19" else VGG16_CONV_LAYERS
    names: list[str] = []
    for name in convs:
        block = name.split("_")[0]
        if names and not names[-1].startswith(block):
            names.append(f"{names[-1].split('_')[0]}_pool")
        names.append(name)
    names.append("block5_pool")
    return names


@keras.saving.register_keras_serializable(package="style_transfer")
class VGGPreprocess(keras.layers.Layer):
    """RGB in [0, 1] -> the input convention of the weights.

    mode ``caffe``: x*255, RGB->BGR, minus the BGR ImageNet means (Keras VGG);
    ``matconvnet``: x*255 minus the RGB means; ``torch``: (x - mean) / std, RGB.
    """

    def __init__(self, mode: str = "caffe", means: Sequence[float] | None = None, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "matconvnet", "torch"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode
        self.means = None if means is None else [float(m) for m in means]

    def call(self, x):
        ops = keras.ops
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1) * 255.0
            return x - ops.convert_to_tensor(self.means or CAFFE_BGR_MEANS, dtype=x.dtype)
        if self.mode == "matconvnet":
            return x * 255.0 - ops.convert_to_tensor(self.means or MATCONVNET_RGB_MEANS, dtype=x.dtype)
        mean = ops.convert_to_tensor(TORCH_MEAN, dtype=x.dtype)
        std = ops.convert_to_tensor(TORCH_STD, dtype=x.dtype)
        return (x - mean) / std

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "means": self.means}


def load_weights(weights: VGGWeights | str | None = None, arch: str = "vgg19") -> VGGWeights:
    """Weights object from a VGGWeights, a path, or ``None`` (offline resolution)."""
    if isinstance(weights, VGGWeights):
        return weights
    if arch == "vgg16":
        return load_vgg16_weights(weights)
    if arch != "vgg19":
        raise ValueError(f"arch must be 'vgg19' or 'vgg16', not {arch!r}")
    return load_vgg19_weights(weights)


def build_feature_extractor(
    layers: Iterable[str], weights: VGGWeights | str | None = None, *, arch: str = "vgg19", pooling: str = "max"
) -> keras.Model:
    """A Keras model: RGB [0, 1] (batch, H, W, 3) -> {name: activation} for the named layers.

    The network stops at the deepest requested layer. ``weights`` is a :class:`VGGWeights`, a
    path, or ``None`` to resolve them offline (see :mod:`style_transfer.weights`); there is no
    random-weights fallback. The source is kept in ``model.weights_source``.
    """
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise ValueError("ask for at least one layer")
    if pooling not in ("max", "avg"):
        raise ValueError("pooling must be 'max' or 'avg'")
    w = load_weights(weights, arch)
    layout = vgg_layout(w.arch)
    unknown = [n for n in layers if n not in layout]
    if unknown:
        raise ValueError(f"unknown {w.arch} layers {unknown}; choose from {layout}")
    deepest = max(layout.index(n) for n in layers)
    means = None
    for note in w.notes:
        if note.startswith("matconvnet_means="):
            means = [float(v) for v in note.split("=", 1)[1].strip("[]").split(",")]

    inputs = keras.Input((None, None, 3), name="image")
    x = VGGPreprocess(w.preprocessing, means, name="preprocess")(inputs)
    outputs = {}
    conv_layers = {}
    for name in layout[: deepest + 1]:
        if name.endswith("_pool"):
            pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
            x = pool(2, strides=2, name=name)(x)
        else:
            kernel = w.layers[name][0]
            conv = keras.layers.Conv2D(kernel.shape[-1], 3, padding="same", activation="relu", name=name)
            x = conv(x)
            conv_layers[name] = conv
        if name in layers:
            outputs[name] = x
    model = keras.Model(inputs, outputs, name=f"{w.arch}_features")
    for name, conv in conv_layers.items():
        kernel, bias = w.layers[name]
        conv.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    model.trainable = False
    model.weights_source = w.source
    model.weights_notes = list(w.notes)
    return model


def receptive_field(layer: str, arch: str = "vgg19") -> tuple[int, int, int]:
    """(size, stride, padding) in input pixels of one unit of ``layer``.

    Unit (i, j) of the layer sees input rows ``i*stride - padding`` .. ``+ size - 1`` (same for
    columns). 3x3 'same' convolutions add 2*stride to the size and 1*stride to the padding; 2x2/2
    pools add stride to the size and double the stride.
    """
    size, stride, pad = 1, 1, 0
    for name in vgg_layout(arch):
        if name.endswith("_pool"):
            size += stride
            stride *= 2
        else:
            size += 2 * stride
            pad += stride
        if name == layer:
            return size, stride, pad
    raise ValueError(f"unknown layer {layer!r}")
