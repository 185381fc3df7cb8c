"""The model code is backend-neutral: Keras layers and ``keras.ops`` only, so the encoders, the
triplet losses and the Siamese pair features give TensorFlow's numbers on Keras' JAX backend too.

A child process with ``KERAS_BACKEND=jax`` builds each piece from the same weights (the pretrained
dlib ResNet and SFace from the package's converted caches, NN4.small2 from this process's random
initialisation) and runs the same inputs; this process, on TensorFlow, compares. A TensorFlow-only
op slipped into a layer fails the child (a TF tensor is not a JAX array), a backend-specific
numerical difference fails the comparison. (The package's inference runner, ``encode_chips``, is
TensorFlow's ``tf.function`` by design and is not part of this.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facenet_keras.weights import MissingWeightsError

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from facenet_keras.models.dlib_resnet import dlib_resnet
    from facenet_keras.models.nn4_small2 import nn4_small2
    from facenet_keras.models.sface import sface
    from facenet_keras.training.losses import TripletLoss, mined_triplet_loss, triplet_loss
    from facenet_keras.training.siamese import PairFeatures

    def traced(fn, *args):
        # under jax.jit every value is a tracer: an op of another backend cannot take it
        return np.asarray(jax.jit(fn)(*args))

    inputs = dict(np.load(sys.argv[1]))
    out = {}
    out["dlib"] = traced(lambda x: dlib_resnet()(x, training=False), inputs["dlib_chips"])
    out["sface"] = traced(lambda x: sface()(x, training=False), inputs["sface_chips"])
    nn4 = nn4_small2()
    nn4.set_weights([inputs[f"nn4_{i}"] for i in range(int(inputs["nn4_count"]))])
    out["nn4"] = traced(lambda x: nn4(x, training=False), inputs["nn4_chips"])
    e, labels = inputs["embeddings"], inputs["labels"]
    triplets = np.stack([e[0:4], e[4:8], e[8:12]], axis=1)
    out["triplet_loss"] = traced(lambda t: triplet_loss(None, t, alpha=0.2), triplets)

    def triplet_layer(a, p, n):
        layer = TripletLoss(alpha=0.2)
        return layer([a, p, n]), layer.losses[0]

    distances, loss = jax.jit(triplet_layer)(e[0:4], e[4:8], e[8:12])
    out["triplet_layer"], out["triplet_layer_loss"] = np.asarray(distances), np.asarray(loss)
    for strategy in ("hard", "semi-hard"):
        out[f"mined_{strategy}"] = traced(
            lambda x, s=strategy: keras.ops.stack(mined_triplet_loss(labels, x, strategy=s)), e
        ).astype(np.float64)
    for kind in ("abs", "chi2"):
        out[f"pair_{kind}"] = traced(lambda a, b, k=kind: PairFeatures(k)([a, b]), e[:6], e[6:])
    np.savez(sys.argv[2], **out)
    """
)


def _tensorflow_side(inputs: dict) -> dict:
    """The same pieces on this process's backend (TensorFlow)."""
    import keras

    from facenet_keras.models.dlib_resnet import dlib_resnet
    from facenet_keras.models.sface import sface
    from facenet_keras.training.losses import TripletLoss, mined_triplet_loss, triplet_loss
    from facenet_keras.training.siamese import PairFeatures

    assert keras.backend.backend() == "tensorflow"
    out = {
        "dlib": np.asarray(dlib_resnet()(inputs["dlib_chips"], training=False)),
        "sface": np.asarray(sface()(inputs["sface_chips"], training=False)),
    }
    e, labels = inputs["embeddings"], inputs["labels"]
    triplet = np.stack([e[0:4], e[4:8], e[8:12]], axis=1)
    out["triplet_loss"] = np.asarray(triplet_loss(None, triplet, alpha=0.2))
    layer = TripletLoss(alpha=0.2)
    out["triplet_layer"] = np.asarray(layer([e[0:4], e[4:8], e[8:12]]))
    out["triplet_layer_loss"] = np.asarray(layer.losses[0])
    for strategy in ("hard", "semi-hard"):
        out[f"mined_{strategy}"] = np.array([float(v) for v in mined_triplet_loss(labels, e, strategy=strategy)])
    for kind in ("abs", "chi2"):
        out[f"pair_{kind}"] = np.asarray(PairFeatures(kind)([e[:6], e[6:]]))
    return out


def test_models_and_losses_give_tensorflows_numbers_on_jax(tmp_path):
    pytest.importorskip("jax", reason="jax is in the test extra: run `make install-test`")
    from facenet_keras.models.nn4_small2 import nn4_small2
    from facenet_keras.models.sface import sface_onnx_path

    try:
        sface_onnx_path()
    except MissingWeightsError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(0)
    nn4 = nn4_small2()
    weights = nn4.get_weights()
    embeddings = rng.normal(size=(12, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    inputs = {
        "dlib_chips": rng.integers(0, 256, (2, 150, 150, 3)).astype(np.float32),
        "sface_chips": rng.integers(0, 256, (2, 112, 112, 3)).astype(np.float32),
        "nn4_chips": rng.uniform(0, 1, (2, 96, 96, 3)).astype(np.float32),
        "nn4_count": np.array(len(weights)),
        "embeddings": embeddings,
        "labels": np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]),
        **{f"nn4_{i}": w for i, w in enumerate(weights)},
    }
    expected = _tensorflow_side(inputs)  # first, so the converted weights are cached for the child
    expected["nn4"] = np.asarray(nn4(inputs["nn4_chips"], training=False))
    np.savez(tmp_path / "in.npz", **inputs)
    (tmp_path / "child.py").write_text(CHILD)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = dict(np.load(tmp_path / "out.npz"))
    assert set(got) == set(expected)
    for name, want in expected.items():
        scale = max(1.0, float(np.abs(want).max()))
        assert got[name].shape == want.shape, name
        assert np.abs(got[name] - want).max() <= 1e-4 * scale, (name, float(np.abs(got[name] - want).max()))
    # the comparison has something to compare: real embeddings and losses that are not all zero
    assert np.linalg.norm(expected["sface"], axis=1) == pytest.approx(1.0, abs=1e-4)
    assert expected["mined_hard"][0] > 0 and expected["mined_semi-hard"][1] > 0  # (loss, active terms)
    assert float(expected["triplet_layer_loss"]) > 0
