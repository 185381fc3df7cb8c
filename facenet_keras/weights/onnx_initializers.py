"""A reader of ONNX files' weights: initialisers and weight-only subgraphs as numpy, nothing executed.

An ONNX model stores its weights as initialisers (``TensorProto``). Quantised files keep them as
int8 with ``DequantizeLinear`` (and a ``Reshape`` back to the kernel's shape) in front of each
layer; those nodes act on constants only, so they are evaluated here in numpy: the rest of the
graph (anything that touches the image) is returned as structure (op, inputs, attributes) for a
model builder to check its layers against. Read with the ``onnx`` package's protobuf classes.

``DequantizeLinear`` is implemented per tensor, per axis and in blocks (opset 21: ``block_size``
consecutive elements along ``axis`` share a scale and zero point), as
``y = (q - zero_point) * scale`` in float32, the arithmetic onnxruntime uses.
``style_transfer/onnx_graph.py`` has a similar reader (per axis only); the two packages do not
import each other, so the overlap is deliberate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ONNX_PIP",
    "OnnxFormatError",
    "OnnxGraph",
    "OnnxNode",
    "dequantize_linear",
    "read_onnx",
]

ONNX_PIP = "pip install onnx"

# ops evaluated here when all their inputs are constants (weights-only subgraphs)
_WEIGHT_OPS = ("DequantizeLinear", "Reshape", "Constant")


class OnnxFormatError(ValueError):
    """The file is not an ONNX model, or holds something this reader does not support."""


@dataclass(frozen=True)
class OnnxNode:
    """One node of the graph: ``op`` (e.g. ``Conv``), input and output tensor names and the
    attributes as Python values (ints, floats, strings, lists; tensors as numpy)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict)


@dataclass
class OnnxGraph:
    """A read graph: the nodes that touch data (in file order), every constant as numpy (initialisers
    and the outputs of weight-only nodes, already evaluated), the real inputs and the outputs."""

    nodes: list[OnnxNode]
    constants: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]
    #: declared shape of each input, None for a dimension without a fixed size
    input_shapes: dict[str, tuple] = field(default_factory=dict)

    def producer(self, tensor: str) -> OnnxNode | None:
        """The node whose output is ``tensor`` (None for inputs and constants)."""
        return next((n for n in self.nodes if tensor in n.outputs), None)

    def consumers(self, tensor: str) -> list[OnnxNode]:
        """The nodes that take ``tensor`` as an input."""
        return [n for n in self.nodes if tensor in n.inputs]

    def op_counts(self) -> dict[str, int]:
        """How many nodes of each op the data path has."""
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts


def dequantize_linear(q, scale, zero_point=None, axis: int = 1, block_size: int = 0) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32, with ONNX's broadcasting rules (opset 21).

    A scalar (or one-element) ``scale`` is per tensor; a 1-D ``scale`` with ``block_size == 0`` is
    per slice along ``axis``; with ``block_size > 0``, ``scale`` has ``q``'s shape except along
    ``axis``, where it has ceil(q.shape[axis] / block_size) entries, each shared by that many
    consecutive elements. Raises :class:`OnnxFormatError` when the shapes do not fit.
    """
    q = np.asarray(q)
    scale = np.asarray(scale, dtype=np.float32)
    zp = np.zeros_like(scale, dtype=np.int32) if zero_point is None else np.asarray(zero_point).astype(np.int32)
    if zp.shape != scale.shape:
        raise OnnxFormatError(f"DequantizeLinear: zero point {zp.shape} and scale {scale.shape} differ in shape")
    if q.ndim:
        axis = axis % q.ndim
    if block_size > 0:
        expected = list(q.shape)
        expected[axis] = -(-q.shape[axis] // block_size)
        if list(scale.shape) != expected:
            raise OnnxFormatError(
                f"DequantizeLinear: blocks of {block_size} along axis {axis} of {q.shape} need scales "
                f"{tuple(expected)}, got {scale.shape}"
            )
        index = np.arange(q.shape[axis]) // block_size
        scale, zp = np.take(scale, index, axis=axis), np.take(zp, index, axis=axis)
    elif scale.size == 1:
        scale, zp = scale.reshape(()), zp.reshape(())
    else:
        if scale.ndim != 1 or scale.shape[0] != q.shape[axis]:
            raise OnnxFormatError(f"DequantizeLinear: per-axis scales {scale.shape} do not fit {q.shape}, axis {axis}")
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q.astype(np.int32) - zp).astype(np.float32) * scale


def _attrs(node) -> dict:
    from onnx import helper, numpy_helper

    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if hasattr(value, "dims") and hasattr(value, "data_type"):  # a TensorProto
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        out[a.name] = value
    return out


def _evaluate(op: str, args: list[np.ndarray], attrs: dict) -> np.ndarray:
    """One weight-only node in numpy."""
    if op == "Constant":
        if "value" not in attrs:
            raise OnnxFormatError(f"Constant node with unsupported attributes {sorted(attrs)}")
        return np.asarray(attrs["value"])
    if op == "DequantizeLinear":
        if attrs.get("output_dtype", 0) not in (0, 1):  # 1 = float32
            raise OnnxFormatError(f"DequantizeLinear to dtype {attrs['output_dtype']} is not supported")
        return dequantize_linear(*args, axis=int(attrs.get("axis", 1)), block_size=int(attrs.get("block_size", 0)))
    if op == "Reshape":
        data, shape = args
        shape = [int(s) for s in shape]
        if not attrs.get("allowzero", 0):
            shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return data.reshape(shape)
    raise OnnxFormatError(f"cannot evaluate {op} on weights")


def read_onnx(path: str | os.PathLike[str]) -> OnnxGraph:
    """Read an ONNX file: initialisers and weight-only nodes as numpy, the rest as structure.

    Graph inputs that are initialisers or that no node uses (some exporters list every weight as
    an input) are not counted as inputs. Raises :class:`OnnxFormatError` for a file that is not
    ONNX, and ``ImportError`` naming the pip command when the ``onnx`` package is missing.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ImportError(f"reading ONNX weights needs the onnx package: {ONNX_PIP}") from exc
    try:
        model = onnx.load(str(Path(path)))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise OnnxFormatError(f"not an ONNX model: {path} ({exc})") from exc
    graph = model.graph
    if not graph.node:
        raise OnnxFormatError(f"the ONNX graph in {path} has no nodes")
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes: list[OnnxNode] = []
    for n in graph.node:
        attrs = _attrs(n)
        inputs = tuple(n.input)
        if n.op_type in _WEIGHT_OPS and all(i in constants for i in inputs if i):
            try:
                value = _evaluate(n.op_type, [constants[i] for i in inputs if i], attrs)
            except (ValueError, IndexError) as exc:
                raise OnnxFormatError(f"node {n.name!r} ({n.op_type}): {exc}") from None
            constants[n.output[0]] = value
            continue
        nodes.append(OnnxNode(n.name, n.op_type, inputs, tuple(n.output), attrs))
    used = {i for n in nodes for i in n.inputs}
    declared = [i for i in graph.input if i.name not in constants and i.name in used]
    shapes = {i.name: tuple(d.dim_value or None for d in i.type.tensor_type.shape.dim) for i in declared}
    return OnnxGraph(
        nodes=nodes,
        constants=constants,
        inputs=[i.name for i in declared],
        outputs=[o.name for o in graph.output],
        input_shapes=shapes,
    )
