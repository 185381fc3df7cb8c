"""Read the weights of an ONNX file as float numpy arrays (the ``onnx`` package's protobuf reader only).

Why: the Magenta networks ship as ONNX files (see :mod:`style_transfer.magenta`). We never run them
with an ONNX runtime; we read their tensors, dequantise the int8 ones, and rebuild the networks in
Keras. Nothing here executes a graph.

:class:`OnnxWeights` holds, by tensor name:
- the initialisers (``onnx.numpy_helper.to_array``);
- the outputs of ``Constant`` nodes;
- the outputs of ``DequantizeLinear`` nodes whose inputs are all constant: ``(q - zero_point) * scale``,
  per axis when the scale is a vector (int8 weights of a converted TFLite model become float32 here).
It also indexes nodes by their first output, so a builder asks for ``conv("name/Conv2D_prequant")``
and gets the kernel, the bias and the attributes of that convolution, and ``qparams("name/Relu")``
for the scale and zero point of the activation ``QuantizeLinear`` producing that tensor (the int8
rounding the shipped files apply to every activation; :mod:`style_transfer.magenta` can reproduce it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ONNX_INSTALL = "pip install onnx"


@dataclass(frozen=True)
class QParams:
    """A per-tensor ONNX quantisation: q = saturate(round_half_even(x / scale) + zero_point) in [qmin, qmax]."""

    scale: float
    zero_point: int
    dtype: str  # "int8" | "uint8": the zero point's type decides the saturation range

    @property
    def qmin(self) -> int:
        return -128 if self.dtype == "int8" else 0

    @property
    def qmax(self) -> int:
        return 127 if self.dtype == "int8" else 255


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:  # pragma: no cover - declared in the [style] extra
        raise ImportError(f"reading the Magenta ONNX files needs the onnx package: {ONNX_INSTALL}") from e
    return onnx, numpy_helper


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1) -> np.ndarray:
    """ONNX DequantizeLinear: ``(q - zero_point) * scale``; a vector scale applies along ``axis``."""
    q = np.asarray(q).astype(np.float64)
    scale = np.asarray(scale, np.float64)
    zp = np.zeros_like(scale) if zero_point is None else np.asarray(zero_point).astype(np.float64)
    if scale.ndim == 1 and q.ndim > 0 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q - zp) * scale).astype(np.float32)


class OnnxWeights:
    """Constant tensors of one ONNX file as float arrays, and its nodes by output name."""

    def __init__(self, path: str | os.PathLike):
        onnx, numpy_helper = _onnx()
        self.path = Path(path)
        model = onnx.load(str(self.path))
        graph = model.graph
        self.values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes: dict[str, Node] = {}
        self.order: list[Node] = []
        for n in graph.node:
            attrs = {}
            for a in n.attribute:
                v = onnx.helper.get_attribute_value(a)
                attrs[a.name] = numpy_helper.to_array(v) if hasattr(v, "dims") else v
            node = Node(n.op_type, tuple(n.input), tuple(n.output), attrs)
            self.order.append(node)
            for out in n.output:
                self.nodes[out] = node
            if n.op_type == "Constant":
                self.values[n.output[0]] = np.asarray(attrs["value"])
            elif n.op_type == "DequantizeLinear" and all(i in self.values for i in n.input if i):
                zp = self.values[n.input[2]] if len(n.input) > 2 and n.input[2] else None
                self.values[n.output[0]] = dequantize(
                    self.values[n.input[0]], self.values[n.input[1]], zp, int(attrs.get("axis", 1))
                )
        self.inputs = [i.name for i in graph.input]
        self.outputs = [o.name for o in graph.output]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def array(self, name: str) -> np.ndarray:
        """A constant tensor as float32 (initialiser, Constant or dequantised)."""
        try:
            return np.asarray(self.values[name], np.float32)
        except KeyError:
            raise KeyError(f"{self.path.name}: no constant tensor {name!r}") from None

    def conv(self, output: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """The Conv node producing ``output``: (kernel (out, in/group, kh, kw), bias (out,) or None, attrs)."""
        node = self.nodes.get(output)
        if node is None or node.op != "Conv":
            raise KeyError(f"{self.path.name}: no Conv node producing {output!r}")
        kernel = self.array(node.inputs[1])
        bias = self.array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        return kernel, bias, node.attrs

    def qparams(self, output: str) -> QParams:
        """Scale and zero point of the activation ``QuantizeLinear`` node producing ``output``.

        Only per-tensor int8 / uint8 quantisation (what these files use); anything else is refused.
        """
        node = self.nodes.get(output)
        if node is None or node.op != "QuantizeLinear":
            raise KeyError(f"{self.path.name}: no QuantizeLinear node producing {output!r}")
        scale = np.asarray(self.values[node.inputs[1]])
        has_zp = len(node.inputs) > 2 and node.inputs[2]
        zp = np.asarray(self.values[node.inputs[2]]) if has_zp else np.zeros((), np.uint8)  # ONNX default
        if scale.size != 1 or zp.size != 1 or zp.dtype not in (np.int8, np.uint8):
            raise ValueError(f"{self.path.name}: {output!r} is not a per-tensor int8/uint8 quantisation")
        return QParams(float(np.float32(scale.reshape(()))), int(zp.reshape(())), str(zp.dtype))

    def find(self, op: str, contains: str = "") -> list[Node]:
        """Nodes of type ``op`` whose first output contains ``contains``, in graph order."""
        return [n for n in self.order if n.op == op and contains in n.outputs[0]]


def keras_kernel(kernel: np.ndarray) -> np.ndarray:
    """ONNX (out, in, kh, kw) -> Keras Conv2D (kh, kw, in, out)."""
    return np.ascontiguousarray(np.asarray(kernel, np.float32).transpose(2, 3, 1, 0))


def keras_depthwise_kernel(kernel: np.ndarray) -> np.ndarray:
    """ONNX depthwise (channels, 1, kh, kw) -> Keras DepthwiseConv2D (kh, kw, channels, 1)."""
    return np.ascontiguousarray(np.asarray(kernel, np.float32).transpose(2, 3, 0, 1))
