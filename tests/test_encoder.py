"""The Keras dlib ResNet against dlib itself (the test oracle), and encode_chips' contract."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facenet_keras.models.encoder import encode_chips, load_encoder


@pytest.fixture(scope="module")
def john_chips(shared_data):
    """The 150x150 chips of five men named John from dlib's examples: (N, 150, 150, 3), labels."""
    paths = sorted(shared_data.glob("faces/dlib_john_*/*.jpg"))
    assert len(paths) >= 50, paths
    chips = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    labels = np.array([p.parent.name for p in paths])
    assert chips.shape[1:] == (150, 150, 3) and chips.dtype == np.uint8
    assert len(set(labels)) == 5
    return chips, labels


@pytest.fixture(scope="module")
def dlib_descriptors(john_chips):
    """dlib-bin's own descriptors for the same chips (dlib is imported here, in the test only)."""
    import dlib

    from facenet_keras.weights import dlib_resnet_dat_path

    net = dlib.face_recognition_model_v1(str(dlib_resnet_dat_path()))
    chips, _ = john_chips
    return np.array(net.compute_face_descriptor(list(chips)), dtype=np.float64)


@pytest.fixture(scope="module")
def ours(john_chips, encoder):
    return encode_chips(john_chips[0], model=encoder)


@pytest.mark.kernels
def test_parity_with_dlib(ours, dlib_descriptors):
    assert ours.shape == dlib_descriptors.shape == (len(ours), 128)
    assert ours.dtype == np.float32
    diff = np.abs(ours - dlib_descriptors).max()
    print(f"max |keras - dlib| over {len(ours)} chips x 128: {diff:.2e}")
    # two float32 implementations (TensorFlow's kernels vs dlib's own) of a 29-layer network: they
    # differ only in summation order, each sum rounding at ~1e-7 of its size; measured 4.2e-7 (also
    # with oneDNN on and off on an AVX-512 EPYC) on values ~0.1. 1e-5 leaves 24x for other CPUs'
    # orders (~1e-7 relative per layer over 29 layers, x3)
    assert diff <= 1e-5
    norms = np.linalg.norm(ours, axis=1)
    assert 1.2 < norms.min() and norms.max() < 1.7  # dlib's raw scale, not unit vectors


def test_same_person_closer_than_different(ours, john_chips):
    _, labels = john_chips
    d = np.linalg.norm(ours[:, None] - ours[None], axis=-1)
    iu = np.triu_indices(len(labels), 1)
    same = labels[iu[0]] == labels[iu[1]]
    d_same, d_diff = d[iu][same], d[iu][~same]
    frac = (d_same[:, None] < d_diff[None, :]).mean()
    acc06 = np.concatenate([d_same < 0.6, d_diff >= 0.6]).mean()
    print(
        f"same-person distance < different-person distance in {frac:.4f} of "
        f"{d_same.size}x{d_diff.size} combinations; "
        f"dlib's 0.6 rule right on {acc06:.3f} of pairs"
    )
    assert frac >= 0.95


def test_normalized_encoder(john_chips, ours):
    model = load_encoder(normalize=True)
    assert model is load_encoder(normalize=True) and model is not load_encoder()
    unit = encode_chips(john_chips[0][:8], model=model)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    expected = ours[:8] / np.linalg.norm(ours[:8], axis=1, keepdims=True)
    np.testing.assert_allclose(unit, expected, atol=1e-5)


def test_load_encoder_is_cached(encoder):
    assert load_encoder() is encoder
    assert load_encoder("pretrained") is encoder


def test_encode_chips_shapes_and_batching(john_chips, encoder, ours):
    chips, _ = john_chips
    single = encode_chips(chips[3], model=encoder)
    assert single.shape == (1, 128)
    np.testing.assert_allclose(single[0], ours[3], atol=1e-5)
    assert encode_chips(chips[:0], model=encoder).shape == (0, 128)
    # 11 chips in batches of 4: two full batches and a padded one; same answer as one batch.
    batched = encode_chips(chips[:11], model=encoder, batch_size=4)
    np.testing.assert_allclose(batched, ours[:11], atol=1e-5)
    as_float = encode_chips(chips[:2].astype(np.float32), model=encoder)
    np.testing.assert_allclose(as_float, ours[:2], atol=1e-5)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((2, 160, 160, 3), np.uint8), ValueError, "shape"),
        (np.zeros((150, 150), np.uint8), ValueError, "shape"),
        (np.zeros((1, 150, 150, 4), np.uint8), ValueError, "shape"),
        (np.zeros((1, 150, 150, 3), np.int64), TypeError, "uint8"),
        (np.full((1, 150, 150, 3), 300.0, np.float32), ValueError, "0..255"),
        (np.full((1, 150, 150, 3), np.nan, np.float32), ValueError, "NaN"),
    ],
)
def test_encode_chips_rejects_bad_input(bad, error, match, encoder):
    with pytest.raises(error, match=match):
        encode_chips(bad, model=encoder)


def test_keras_save_load_roundtrip(tmp_path, john_chips):
    import keras

    model = load_encoder(normalize=True)  # covers every custom layer, L2Normalize included
    path = tmp_path / "dlib_resnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = john_chips[0][:4].astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)))


def test_model_graph_has_no_lambda(encoder):
    import keras

    names = {type(layer).__name__ for layer in encoder.layers}
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in encoder.layers)
    assert {"ChannelAffine", "ZeroPadAdd", "InputNormalization"} <= names
    assert encoder.input_shape == (None, 150, 150, 3) and encoder.output_shape == (None, 128)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in encoder.layers) == 29
