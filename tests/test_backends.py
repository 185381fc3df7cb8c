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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CHILD = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    sys.path.insert(0, sys.argv[3])
    from test_backends import pieces

    # under jax.jit every value is a tracer: an op of another backend cannot take it
    np.savez(sys.argv[2], **pieces(dict(np.load(sys.argv[1])), lambda fn, *a: np.asarray(jax.jit(fn)(*a))))
    """
)


def pieces(inputs: dict, run) -> dict:
    """Every piece on the inputs, on the running backend; ``run(fn, *arrays)`` calls ``fn`` (the JAX
    side traces it with ``jax.jit``) and gives a numpy array."""
    import keras

    from facenet_keras.models.dlib_resnet import dlib_resnet
    from facenet_keras.models.nn4_small2 import nn4_small2
    from facenet_keras.models.sface import sface
    from facenet_keras.training.losses import TripletLoss, mined_triplet_loss, triplet_loss
    from facenet_keras.training.siamese import PairFeatures

    out = {
        "dlib": run(lambda x: dlib_resnet()(x, training=False), inputs["dlib_chips"]),
        "sface": run(lambda x: sface()(x, training=False), inputs["sface_chips"]),
    }
    nn4 = nn4_small2()
    nn4.set_weights([inputs[f"nn4_{i}"] for i in range(int(inputs["nn4_count"]))])
    out["nn4"] = run(lambda x: nn4(x, training=False), inputs["nn4_chips"])
    e, labels = inputs["embeddings"], inputs["labels"]
    a, p, n = e[0:4], e[4:8], e[8:12]
    out["triplet_loss"] = run(lambda t: triplet_loss(None, t, alpha=0.2), np.stack([a, p, n], axis=1))
    out["triplet_layer"] = run(lambda *t: TripletLoss(alpha=0.2)(list(t)), a, p, n)

    def layer_loss(*t):
        layer = TripletLoss(alpha=0.2)
        layer(list(t))
        return layer.losses[0]

    out["triplet_layer_loss"] = run(layer_loss, a, p, n)
    for strategy in ("hard", "semi-hard"):  # (loss, active terms)
        mined = run(lambda x, s=strategy: keras.ops.stack(mined_triplet_loss(labels, x, strategy=s)), e)
        out[f"mined_{strategy}"] = mined.astype(np.float64)
    for kind in ("abs", "chi2"):
        out[f"pair_{kind}"] = run(lambda x, y, k=kind: PairFeatures(k)([x, y]), e[:6], e[6:])
    return out


def test_models_and_losses_give_tensorflows_numbers_on_jax(tmp_path):
    pytest.importorskip("jax", reason="jax is in the test extra: run `make install-test`")
    import keras

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
    assert keras.backend.backend() == "tensorflow"
    expected = pieces(inputs, lambda fn, *a: np.asarray(fn(*a)))  # first: the child reads the converted weights
    np.savez(tmp_path / "in.npz", **inputs)
    (tmp_path / "child.py").write_text(CHILD)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), str(HERE)],
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
