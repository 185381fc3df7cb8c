"""The bring-your-own ONNX encoder converter against onnxruntime, on a small synthetic ArcFace-family
graph built here with the onnx helper API (every op and layout it supports), and on SFace's file."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.weights import MissingWeightsError
from facenet_keras.weights.onnx_initializers import OnnxFormatError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _synthetic(extra_op: str | None = None) -> onnx.ModelProto:
    """(1, 3, 16, 16) -> (1, 10): input normalisation, a stride-2 convolution with bias and symmetric
    pads, batch norm, per-channel PReLU, a depthwise convolution (multiplier 2), ReLU, a grouped 1x1
    convolution, a residual Add, a convolution with asymmetric pads, Flatten, Dropout, Gemm (alpha,
    transB) and a batch norm of the vector."""
    rng = np.random.default_rng(0)

    def init(name, shape, scale=0.3, positive=False):
        value = rng.normal(0, scale, shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(value) + 0.5 if positive else value, name)

    inits = [
        numpy_helper.from_array(np.array([127.5], np.float32), "mean"),
        numpy_helper.from_array(np.array([0.0078125], np.float32), "scale"),
        init("w1", (8, 3, 3, 3)),
        init("b1", (8,)),
        init("g1", (8,), positive=True),
        init("be1", (8,)),
        init("m1", (8,)),
        init("v1", (8,), positive=True),
        init("s1", (8, 1, 1)),
        init("wd", (16, 1, 3, 3)),
        init("wg", (16, 4, 1, 1)),
        init("wa", (16, 16, 2, 2)),
        init("wf", (10, 256), scale=0.05),
        init("bf", (10,)),
        init("g2", (10,), positive=True),
        init("be2", (10,)),
        init("m2", (10,)),
        init("v2", (10,), positive=True),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["n0"], name="sub"),
        helper.make_node("Mul", ["n0", "scale"], ["n1"], name="mul"),
        helper.make_node("Conv", ["n1", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["bn1"], name="bn1", epsilon=1e-3),
        helper.make_node("PRelu", ["bn1", "s1"], ["p1"], name="prelu1"),
        helper.make_node("Conv", ["p1", "wd"], ["d1"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "wg"], ["g1o"], name="grouped", group=4),
        helper.make_node("Add", ["g1o", "r1"], ["a1"], name="residual"),
        helper.make_node("Conv", ["a1", "wa"], ["c2"], name="asym", pads=[1, 1, 0, 0], strides=[2, 2]),
        helper.make_node("Flatten", ["c2"], ["f"], name="flatten"),
        helper.make_node("Dropout", ["f"], ["fd"], name="dropout"),
        helper.make_node("Gemm", ["fd", "wf", "bf"], ["e"], name="fc", transB=1, alpha=0.5),
        helper.make_node("BatchNormalization", ["e", "g2", "be2", "m2", "v2"], ["y"], name="bn2", epsilon=2e-5),
    ]
    if extra_op:
        nodes[-1].output[0] = "y0"
        nodes.append(helper.make_node(extra_op, ["y0"], ["y"], name="extra"))
    return _checked_model(nodes, inits, size=16, width=10)


def _checked_model(nodes, inits, *, size: int, width: int) -> onnx.ModelProto:
    """A checked opset-17 model of ``nodes``: input x (1, 3, size, size), output y (1, width)."""
    graph = helper.make_graph(
        nodes,
        "synthetic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ort(model, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: c.transpose(2, 0, 1)[None]})[0] for c in x])


def test_synthetic_graph_matches_onnxruntime(tmp_path):
    from facenet_keras.models.onnx_encoder import onnx_encoder
    from facenet_keras.weights.cache import sha256_file

    model = _synthetic()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(model.SerializeToString())
    ours = onnx_encoder(path, normalize=False)
    x = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3)).astype(np.float32)
    got, want = np.asarray(ours(x, training=False)), _ort(model, x)
    assert got.shape == want.shape == (5, 10)
    assert float(np.abs(got - want).max()) <= 1e-5 * max(1.0, float(np.abs(want).max()))
    assert ours.name == f"onnx_{sha256_file(path)[:16]}"
    unit = np.asarray(onnx_encoder(path)(x, training=False))
    np.testing.assert_allclose(unit, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)


def test_unknown_ops_are_refused_by_name(tmp_path):
    from facenet_keras.models.onnx_encoder import onnx_encoder

    path = tmp_path / "sigmoid.onnx"
    path.write_bytes(_synthetic("Sigmoid").SerializeToString())
    with pytest.raises(OnnxFormatError, match="unsupported ONNX op.*Sigmoid"):
        onnx_encoder(path)
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        onnx_encoder(tmp_path / "absent.onnx")


def test_sface_file_through_the_generic_converter_matches_the_sface_builder():
    from facenet_keras.models.onnx_encoder import onnx_encoder
    from facenet_keras.models.sface import load_sface, sface_onnx_path

    try:
        path = sface_onnx_path()
    except MissingWeightsError as exc:
        pytest.skip(str(exc))
    x = np.random.default_rng(2).integers(0, 256, (3, 112, 112, 3)).astype(np.float32)
    generic = np.asarray(onnx_encoder(path)(x, training=False))
    built = np.asarray(load_sface()(x, training=False))
    assert float(np.abs(generic - built).max()) <= 1e-5


def _insightface_style(prelu_slope_shape=(8, 1, 1), size: int = 16) -> onnx.ModelProto:
    """(1, 3, size, size) -> (1, 6) like InsightFace's iresnet files: no normalisation in the graph, a
    batch norm before a convolution (pre-activation, not foldable), a residual block with a strided
    shortcut, a batch norm after the Add, Flatten, Gemm and a final batch norm."""
    rng = np.random.default_rng(3)

    def init(name, shape, scale=0.3, positive=False):
        value = rng.normal(0, scale, shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(value) + 0.5 if positive else value, name)

    def bn(prefix, c):
        return [init(f"{prefix}g", (c,), positive=True), init(f"{prefix}b", (c,)), init(f"{prefix}m", (c,))] + [
            init(f"{prefix}v", (c,), positive=True)
        ]

    inits = [init("w0", (8, 3, 3, 3)), *bn("n0", 8), init("s0", prelu_slope_shape), *bn("n1", 8)]
    inits += [init("w1", (8, 8, 3, 3)), *bn("n2", 8), init("s1", (8, 1, 1)), init("w2", (8, 8, 3, 3))]
    inits += [*bn("n3", 8), init("ws", (8, 8, 1, 1)), *bn("n4", 8), *bn("n5", 8)]
    inits += [init("wf", (6, 8 * (size // 2) ** 2), scale=0.05), init("bf", (6,)), *bn("n6", 6)]

    def bn_node(x, prefix, y):
        return helper.make_node(
            "BatchNormalization", [x, f"{prefix}g", f"{prefix}b", f"{prefix}m", f"{prefix}v"], [y], name=prefix
        )

    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
        bn_node("c0", "n0", "b0"),
        helper.make_node("PRelu", ["b0", "s0"], ["p0"], name="prelu0"),
        bn_node("p0", "n1", "b1"),  # pre-activation: after a PRelu, not foldable
        helper.make_node("Conv", ["b1", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        bn_node("c1", "n2", "b2"),
        helper.make_node("PRelu", ["b2", "s1"], ["p1"], name="prelu1"),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        bn_node("c2", "n3", "b3"),
        helper.make_node("Conv", ["p0", "ws"], ["cs"], name="shortcut", strides=[2, 2]),
        bn_node("cs", "n4", "bs"),
        helper.make_node("Add", ["b3", "bs"], ["a"], name="add"),
        bn_node("a", "n5", "b5"),
        helper.make_node("Flatten", ["b5"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["e"], name="fc", transB=1),
        bn_node("e", "n6", "y"),
    ]
    return _checked_model(nodes, inits, size=size, width=6)


def test_a_graph_without_its_own_normalisation_gets_insightfaces(tmp_path):
    """No Sub / Mul on the input: the model feeds the graph (x - 127.5) / 127.5, as InsightFace's
    loader does; batch norms after a convolution or Gemm are folded, the others kept."""
    import keras

    from facenet_keras.models.onnx_encoder import onnx_encoder

    model = _insightface_style()
    path = tmp_path / "iresnet.onnx"
    path.write_bytes(model.SerializeToString())
    ours = onnx_encoder(path, normalize=False)
    x = np.random.default_rng(4).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    want = _ort(model, (x - 127.5) / 127.5)
    got = np.asarray(ours(x, training=False))
    assert float(np.abs(got - want).max()) <= 1e-5 * max(1.0, float(np.abs(want).max()))
    kinds = [type(layer).__name__ for layer in ours.layers]
    assert kinds.count("BatchNormalization") == 0 and kinds.count("ChannelAffine") == 2  # n1 and n5 kept
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in ours.layers)


def test_slopes_that_onnx_broadcasts_along_the_width_are_refused(tmp_path):
    """A PRelu slope of shape (C,) on an NCHW tensor applies along W in ONNX, not per channel: with
    C == W == 8 it has the right size, and converting it per channel would be silently wrong."""
    from facenet_keras.models.onnx_encoder import onnx_encoder

    path = tmp_path / "wide.onnx"
    model = _insightface_style(prelu_slope_shape=(8,), size=8)
    _ort(model, np.zeros((1, 8, 8, 3), np.float32))  # a valid graph: onnxruntime runs it
    path.write_bytes(model.SerializeToString())
    with pytest.raises(OnnxFormatError, match="not per channel"):
        onnx_encoder(path)


def test_cli_refuses_a_graph_with_unknown_ops_in_one_line(tmp_path, capsys):
    from facenet_keras.cli import main
    from facenet_keras.demo import sample_portraits

    path = tmp_path / "sigmoid.onnx"
    path.write_bytes(_synthetic("Sigmoid").SerializeToString())
    photo = tmp_path / "grace.png"
    from PIL import Image

    Image.fromarray(sample_portraits()["Grace Hopper"]).save(photo)
    code = main(["--gallery", str(tmp_path / "g.sqlite"), "enroll", "grace", str(photo), "--model", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Sigmoid" in err
