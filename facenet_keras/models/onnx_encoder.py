"""Bring your own ArcFace-family encoder: an ONNX face encoder rebuilt layer by layer in Keras.

ArcFace-family files (SFace, InsightFace's MobileFaceNet / ResNet ``w600k_*.onnx``) are plain
feed-forward graphs over a (1, 3, 112, 112) image: ``Conv`` (full, depthwise or grouped),
``BatchNormalization``, ``PRelu``, ``Relu``, ``Add`` (residuals, or a constant), ``Sub`` / ``Mul`` by
constants (the input normalisation), ``Dropout`` and ``Identity`` (no-ops at inference), ``Flatten``
and ``Gemm``. Each becomes the matching Keras layer, NCHW weights laid out for NHWC; ONNX's explicit
pads become ``ZeroPadding2D`` + "valid" (Keras' "same" pads differently at stride 2), and a
``Flatten`` of an image tensor first permutes it to ONNX's (C, H, W) order so the dense weights
apply unchanged. A batch normalisation right after a convolution or a ``Gemm`` (its only consumer)
is folded into that layer's kernel and bias (:mod:`facenet_keras.models.folding`); any other one
becomes a per-channel affine map. Weights are read (and int8 ones dequantised) by
:mod:`facenet_keras.weights.onnx_initializers`: the graph is never executed. A graph with any other
op is refused, naming the ops.

Input: (N, 112, 112, 3) RGB pixels 0..255. A graph whose input goes first through ``Sub`` or ``Mul``
by constants normalises its pixels itself (SFace; InsightFace's MXNet-born files) and gets them as
they are; any other graph gets ``(x - 127.5) / 127.5`` in front, as InsightFace's own loader
(``ArcFaceONNX``) feeds such files. Output: its embedding, L2-normalised by default. The model's name
carries the file's sha256, so embeddings of two files never share an embedding space. Its chips are
the 112x112 ArcFace template's (``facenet_keras_alignment = "arcface"``), and it carries no distance
threshold: decisions need one given or calibrated. The licence of a file you bring is yours to
respect (InsightFace's models are for non-commercial research only).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import keras
import numpy as np

from facenet_keras.models.folding import batchnorm_affine, fold_affine
from facenet_keras.models.layers import ChannelAffine, InputNormalization, L2Normalize
from facenet_keras.weights.cache import sha256_file
from facenet_keras.weights.onnx_initializers import OnnxFormatError, OnnxGraph, OnnxNode, read_onnx

__all__ = [
    "ARCFACE_ALIGNMENT",
    "SUPPORTED_OPS",
    "convert_onnx_graph",
    "load_onnx_encoder",
    "normalises_input",
    "onnx_encoder",
]

#: the chip an ArcFace-family encoder takes (the pipeline's alignment route of that name)
ARCFACE_ALIGNMENT = "arcface"
#: chips per forward pass (:func:`facenet_keras.models.encoder.pass_size`): ArcFace-family networks
#: start with wide tensors at 112x112, bound by memory traffic; SFace through this converter ran 2x
#: faster in passes of 8 than of 32 on 2 shared cores (67 against 33 chips/s, same run, load 11)
PASS_SIZE = 8
#: InsightFace's normalisation for a graph that does not normalise its input itself: (x - 127.5) / 127.5
OUTSIDE_MEAN, OUTSIDE_SCALE = 127.5, 1.0 / 127.5

SUPPORTED_OPS = frozenset(
    {"Conv", "BatchNormalization", "PRelu", "Relu", "Add", "Sub", "Mul", "Dropout", "Identity", "Flatten", "Gemm"}
)


def _per_channel(c: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """A constant that ONNX broadcasts per channel (or as a scalar) over an NCHW (rank 4) or NC
    (rank 2) tensor, as (channels,); None when it broadcasts any other way (e.g. a (C,) constant
    against NCHW, which ONNX applies along the width)."""
    if c.size == 1:
        return np.full(channels, c.reshape(()), np.float32)
    shape = list(c.shape)
    while shape and shape[0] == 1 and len(shape) > rank - 1:
        shape.pop(0)
    want = [channels] + [1] * (rank - 2)
    if shape != want:
        return None
    return c.reshape(channels).astype(np.float32)


def normalises_input(graph: OnnxGraph) -> bool:
    """Whether the graph's input goes first through ``Sub`` or ``Mul`` by a constant (the graph then
    normalises raw pixels itself, as SFace's and InsightFace's MXNet-born files do)."""
    first = graph.consumers(graph.inputs[0])
    return len(first) == 1 and first[0].op in ("Sub", "Mul") and any(i in graph.constants for i in first[0].inputs)


class _Builder:
    """Walks the graph's nodes in order, keeping each tensor as a Keras tensor (4-D ones NHWC)."""

    def __init__(self, graph: OnnxGraph):
        self.graph = graph
        self.tensors: dict = {}
        self.weights: list = []  # (layer, [arrays]) set once the model is built
        self.names: set[str] = set()
        # Conv / Gemm node name -> the batch normalisation that is its output's only consumer
        self.folded: dict[str, OnnxNode] = {}
        for node in graph.nodes:
            if node.op in ("Conv", "Gemm") and node.outputs[0] not in graph.outputs:
                after = graph.consumers(node.outputs[0])
                if len(after) == 1 and after[0].op == "BatchNormalization" and after[0].inputs[0] == node.outputs[0]:
                    self.folded[node.name] = after[0]
        self.absorbed = {bn.name for bn in self.folded.values()}

    def name(self, node: OnnxNode, suffix: str = "") -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", node.name or node.outputs[0]) + suffix
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def const(self, tensor: str) -> np.ndarray | None:
        value = self.graph.constants.get(tensor)
        return None if value is None else np.asarray(value, np.float32)

    def layer(self, layer, x, arrays=None):
        if arrays is not None:
            self.weights.append((layer, arrays))
        return layer(x)

    def affine_of(self, node: OnnxNode) -> tuple[np.ndarray, np.ndarray]:
        """A batch normalisation node's (scale, shift)."""
        if node.attrs.get("training_mode", 0):
            raise OnnxFormatError(f"{node.name}: batch normalisation in training mode")
        params = [self.const(t) for t in node.inputs[1:5]]
        if len(params) != 4 or any(p is None for p in params):
            raise OnnxFormatError(f"{node.name}: batch normalisation parameters must be constants")
        return batchnorm_affine(*params, float(node.attrs.get("epsilon", 1e-5)))

    def with_bn(self, node: OnnxNode, kernel, bias) -> list:
        """[kernel, bias] of a Conv / Gemm node, its following batch normalisation folded in."""
        bn = self.folded.get(node.name)
        if bn is None:
            return [kernel] + ([bias] if bias is not None else [])
        return list(fold_affine(kernel, bias, *self.affine_of(bn)))

    # -- ops ----------------------------------------------------------------------------------
    def conv(self, node: OnnxNode, x):
        w = self.const(node.inputs[1])
        if w is None or w.ndim != 4:
            raise OnnxFormatError(f"{node.name}: Conv weights must be a 4-D constant")
        bias = self.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        a = node.attrs
        if a.get("dilations", [1, 1]) != [1, 1] or a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise OnnxFormatError(f"{node.name}: dilated or auto-padded convolutions are not supported")
        top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
        if any((top, left, bottom, right)):
            x = keras.layers.ZeroPadding2D(((top, bottom), (left, right)), name=self.name(node, "_pad"))(x)
        out_c, in_per_group, kh, kw = w.shape
        groups, in_c = int(a.get("group", 1)), int(x.shape[-1])
        strides = tuple(a.get("strides", [1, 1]))
        use_bias = bias is not None or node.name in self.folded
        common = {"strides": strides, "padding": "valid", "use_bias": use_bias, "name": self.name(node)}
        if groups == in_c and groups > 1 and in_per_group == 1:
            layer = keras.layers.DepthwiseConv2D((kh, kw), depth_multiplier=out_c // in_c, **common)
            # (out, 1, kh, kw) -> (kh, kw, in, multiplier), out = in * multiplier + m
            kernel = w.reshape(in_c, out_c // in_c, kh, kw).transpose(2, 3, 0, 1)
        else:
            if in_per_group * groups != in_c:
                raise OnnxFormatError(f"{node.name}: weights {w.shape} do not fit {in_c} channels in {groups} groups")
            layer = keras.layers.Conv2D(out_c, (kh, kw), groups=groups, **common)
            kernel = w.transpose(2, 3, 1, 0)
        return self.layer(layer, x, self.with_bn(node, kernel, bias))

    def batchnorm(self, node: OnnxNode, x):
        if node.name in self.absorbed:  # folded into the layer before it
            return x
        scale, shift = self.affine_of(node)
        if scale.size != int(x.shape[-1]):
            raise OnnxFormatError(f"{node.name}: {scale.size} statistics for {int(x.shape[-1])} channels")
        return self.layer(ChannelAffine(name=self.name(node)), x, [scale, shift])

    def prelu(self, node: OnnxNode, x):
        slope = self.const(node.inputs[1])
        if slope is None:
            raise OnnxFormatError(f"{node.name}: PRelu slopes must be a constant")
        channels = int(x.shape[-1])
        alpha = _per_channel(slope, len(x.shape), channels)
        if alpha is None:
            raise OnnxFormatError(f"{node.name}: PRelu slopes {slope.shape} are not per channel of {channels}")
        shared = list(range(1, len(x.shape) - 1))
        layer = keras.layers.PReLU(shared_axes=shared or None, name=self.name(node))
        return self.layer(layer, x, [alpha.reshape((1,) * len(shared) + (channels,))])

    def elementwise(self, node: OnnxNode):
        """Add of two tensors, or Add / Sub / Mul of a tensor and a constant (scalar or per channel)."""
        a, b = node.inputs[:2]
        if a in self.tensors and b in self.tensors:
            if node.op != "Add":
                raise OnnxFormatError(f"{node.name}: {node.op} of two computed tensors is not supported")
            return keras.layers.Add(name=self.name(node))([self.tensors[a], self.tensors[b]])
        if node.op == "Sub" and a not in self.tensors:
            raise OnnxFormatError(f"{node.name}: constant minus tensor is not supported")
        x, c = (self.tensors[a], self.const(b)) if a in self.tensors else (self.tensors.get(b), self.const(a))
        if x is None or c is None:
            raise OnnxFormatError(f"{node.name}: an input is neither computed nor a constant")
        c = _per_channel(c, len(x.shape), int(x.shape[-1]))
        if c is None:
            raise OnnxFormatError(f"{node.name}: a constant that is not per channel")
        one, zero = np.ones_like(c), np.zeros_like(c)
        gamma, beta = {"Add": (one, c), "Sub": (one, -c), "Mul": (c, zero)}[node.op]
        return self.layer(ChannelAffine(name=self.name(node)), x, [gamma, beta])

    def flatten(self, node: OnnxNode, x):
        if node.attrs.get("axis", 1) != 1:
            raise OnnxFormatError(f"{node.name}: Flatten with axis {node.attrs['axis']}")
        if len(x.shape) == 4:  # to ONNX's (C, H, W) order, so the next layer's weights apply as stored
            x = keras.layers.Permute((3, 1, 2), name=self.name(node, "_nchw"))(x)
        return keras.layers.Flatten(name=self.name(node))(x)

    def gemm(self, node: OnnxNode, x):
        a = node.attrs
        w = self.const(node.inputs[1])
        if a.get("transA", 0) or w is None or w.ndim != 2 or len(x.shape) != 2:
            raise OnnxFormatError(f"{node.name}: Gemm must take a flat tensor and constant 2-D weights")
        kernel = (w.T if a.get("transB", 0) else w) * np.float32(a.get("alpha", 1.0))
        bias = self.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        if bias is not None:
            bias = np.broadcast_to(bias.reshape(-1), (kernel.shape[1],)) * np.float32(a.get("beta", 1.0))
        use_bias = bias is not None or node.name in self.folded
        layer = keras.layers.Dense(kernel.shape[1], use_bias=use_bias, name=self.name(node))
        return self.layer(layer, x, self.with_bn(node, kernel, bias))

    def run(self, node: OnnxNode):
        op = node.op
        if op in ("Add", "Sub", "Mul"):
            return self.elementwise(node)
        x = self.tensors.get(node.inputs[0])
        if x is None:
            raise OnnxFormatError(f"{node.name}: its input {node.inputs[0]!r} is not computed by the graph")
        if op in ("Dropout", "Identity"):
            return x
        if op == "Relu":
            return keras.layers.ReLU(name=self.name(node))(x)
        ops = {"Conv": self.conv, "BatchNormalization": self.batchnorm, "PRelu": self.prelu}
        ops.update(Flatten=self.flatten, Gemm=self.gemm)
        return ops[op](node, x)


def convert_onnx_graph(graph: OnnxGraph, *, name: str = "onnx_encoder", normalize: bool = True) -> keras.Model:
    """A read ONNX graph -> a Keras model (N, H, W, 3) RGB 0..255 -> (N, D), weights set.

    Raises :class:`OnnxFormatError` naming the ops it does not know, or when the graph is not one
    image in, one vector out.
    """
    unknown = sorted({n.op for n in graph.nodes} - SUPPORTED_OPS)
    if unknown:
        raise OnnxFormatError(f"unsupported ONNX op(s) for an ArcFace-family encoder: {', '.join(unknown)}")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise OnnxFormatError(f"an encoder has one input and one output, this graph {graph.inputs} -> {graph.outputs}")
    shape = graph.input_shapes.get(graph.inputs[0], ())
    if len(shape) != 4 or shape[1] != 3 or not shape[2] or not shape[3]:
        raise OnnxFormatError(f"the input must be (N, 3, H, W) with fixed H and W, got {shape}")
    inputs = keras.Input(shape=(shape[2], shape[3], 3), name="chips", dtype="float32")
    builder = _Builder(graph)
    x = inputs
    if not normalises_input(graph):
        x = InputNormalization((OUTSIDE_MEAN,) * 3, OUTSIDE_SCALE, name="normalize")(inputs)
    builder.tensors[graph.inputs[0]] = x
    for node in graph.nodes:
        builder.tensors[node.outputs[0]] = builder.run(node)
    out = builder.tensors.get(graph.outputs[0])
    if out is None or len(out.shape) != 2:
        raise OnnxFormatError(f"the output {graph.outputs[0]!r} is not a vector per image")
    if normalize:
        out = L2Normalize(name="embeddings")(out)
    model = keras.Model(inputs, out, name=name)
    for layer, arrays in builder.weights:
        layer.set_weights([np.ascontiguousarray(a, np.float32) for a in arrays])
    return model


def onnx_encoder(path: str | os.PathLike[str], *, normalize: bool = True) -> keras.Model:
    """Rebuild the ArcFace-family ONNX encoder at ``path`` in Keras (see the module's notes). The
    model's name is ``onnx_<first 16 hex digits of the file's sha256>``; it takes ArcFace chips and
    carries no threshold."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    model = convert_onnx_graph(read_onnx(path), name=f"onnx_{sha256_file(path)[:16]}", normalize=normalize)
    model.facenet_keras_alignment = ARCFACE_ALIGNMENT
    model.facenet_keras_threshold = None
    model.facenet_keras_pass_size = PASS_SIZE
    return model


_lock = threading.Lock()
_by_digest: dict[tuple[str, bool], keras.Model] = {}


def load_onnx_encoder(path: str | os.PathLike[str], normalize: bool = True) -> keras.Model:
    """The encoder of an ONNX file, converted once per process and file content (keyed by its sha256:
    two paths to the same bytes share one model, an edited file is converted again).

    Not cached on disk: a conversion takes a second or two, and the weight cache trusts a cached
    conversion across processes only for sources whose digest the code pins (see
    :mod:`facenet_keras.weights.cache`), which a file you bring cannot be.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    key = (sha256_file(path), bool(normalize))
    with _lock:
        if key not in _by_digest:
            _by_digest[key] = onnx_encoder(path, normalize=normalize)
        return _by_digest[key]
