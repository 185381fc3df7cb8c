"""Command-line options that change an answer, each shown to act: verify --threshold / --classifier,
recognize --threshold, gallery remove --photo, detect --min-face-size / --min-confidence,
--model MODEL.keras with enroll / verify / recognize / evaluate, and the demo's main function."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facenet_keras.cli import main
from facenet_keras.demo import changed_copy, sample_portraits


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    people = sample_portraits()
    paths = {}
    for key, image in [
        ("grace", people["Grace Hopper"]),
        ("eileen", people["Eileen Collins"]),
        ("grace2", changed_copy(people["Grace Hopper"])),
        ("eileen2", changed_copy(people["Eileen Collins"], brightness=0.8)),
    ]:
        paths[key] = folder / f"{key}.jpg"
        Image.fromarray(image).save(paths[key])
    return paths


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def grace_gallery(photos, tmp_path, capsys, encoder):
    g = tmp_path / "g.sqlite"
    assert run(capsys, "--gallery", g, "enroll", "grace", photos["grace"])[0] == 0
    return g


# ------------------------------------------------------------------------------ thresholds


def test_verify_and_recognize_threshold_option(photos, grace_gallery, capsys):
    g = grace_gallery
    code, out, _ = run(capsys, "--gallery", g, "verify", photos["eileen"], "grace", "--json")
    d_stranger = json.loads(out)["distance"]
    assert code == 1 and d_stranger > 0.6
    code, out, _ = run(
        capsys, "--gallery", g, "verify", photos["eileen"], "grace", "--json", "--threshold", d_stranger + 0.01
    )
    r = json.loads(out)
    assert code == 0 and r["match"] and r["threshold"] == pytest.approx(d_stranger + 0.01)
    code, out, _ = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--threshold", "0.01")
    assert code == 1 and out.startswith("NO MATCH") and "threshold 0.010" in out

    code, out, _ = run(
        capsys, "--gallery", g, "--json", "recognize", photos["eileen"], "--threshold", d_stranger + 0.01
    )
    (face,) = json.loads(out)[0]["faces"]
    assert code == 0 and face["identity"] == "grace"
    code, out, _ = run(capsys, "--gallery", g, "--json", "recognize", photos["grace2"], "--threshold", "0.01")
    (face,) = json.loads(out)[0]["faces"]
    assert code == 1 and face["identity"] is None and face["nearest"] == "grace"
    code, _, err = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--threshold", "-1")
    assert code == 2 and "threshold" in err


def test_verify_classifier_option_makes_the_decision(photos, grace_gallery, tmp_path, capsys):
    """A head trained with the labels inverted (near pairs "different", far pairs "same") must
    reverse verify's answers: proof that --classifier, not the threshold, decides."""
    from facenet_keras.training.siamese import SiameseClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.13, size=(200, 128)).astype(np.float32)
    near = x + rng.normal(0, 0.025, size=x.shape).astype(np.float32)  # distance ~0.4
    far = x + rng.normal(0, 0.075, size=x.shape).astype(np.float32)  # distance ~0.85
    head = SiameseClassifier().fit(
        np.concatenate([x, x]), np.concatenate([near, far]), np.r_[np.zeros(200), np.ones(200)], epochs=200
    )
    path = head.save(tmp_path / "inverted.keras")
    g = grace_gallery
    code, out, _ = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--classifier", path, "--json")
    r = json.loads(out)
    assert code == 1 and not r["match"] and r["probability"] < 0.5 and r["distance"] < 0.6
    code, out, _ = run(capsys, "--gallery", g, "verify", photos["eileen"], "grace", "--classifier", path)
    assert code == 0 and out.startswith("MATCH") and "P(same)" in out


# ------------------------------------------------------------------------------ gallery remove --photo


def test_gallery_remove_one_photo(photos, tmp_path, capsys, encoder):
    g = tmp_path / "g.sqlite"
    assert run(capsys, "--gallery", g, "enroll", "grace", photos["grace"], photos["grace2"])[0] == 0
    assert run(capsys, "--gallery", g, "enroll", "eileen", photos["eileen"])[0] == 0
    listing = json.loads(run(capsys, "--gallery", g, "gallery", "list", "--json")[1])
    grace = next(p for p in listing["people"] if p["name"] == "grace")
    first, second = (p["id"] for p in grace["photos"])
    code, out, _ = run(capsys, "--gallery", g, "gallery", "remove", "--photo", first)
    assert code == 0 and f"#{first}" in out
    listing = json.loads(run(capsys, "--gallery", g, "gallery", "list", "--json")[1])
    kept = {p["name"]: [q["id"] for q in p["photos"]] for p in listing["people"]}
    assert kept["grace"] == [second] and len(kept["eileen"]) == 1
    assert run(capsys, "--gallery", g, "gallery", "remove", "grace", "--photo", second)[0] == 2  # not both
    code, _, err = run(capsys, "--gallery", g, "gallery", "remove", "--photo", first)  # gone already
    assert code == 2 and err
    listing = json.loads(run(capsys, "--gallery", g, "gallery", "list", "--json")[1])
    assert {p["name"]: len(p["photos"]) for p in listing["people"]} == {"grace": 1, "eileen": 1}


# ------------------------------------------------------------------------------ detect options


def test_detect_min_face_size_and_min_confidence(shared_data, capsys):
    """bbt1 has four faces >= 100 px scoring >= 0.97 and a 27 px reflection scoring ~0.83."""
    photo = shared_data / "group" / "face_api_js__bbt1.jpg"

    def detect(*options):
        code, out, _ = run(capsys, "detect", photo, "--json", *options)
        assert code == 0
        return json.loads(out)[0]["faces"]

    default = detect()
    assert len(default) == 5
    confident = detect("--min-confidence", "0.98")
    assert 0 < len(confident) < len(default) and all(f["confidence"] >= 0.98 for f in confident)
    large = detect("--min-face-size", "60")
    assert len(large) == 4 and min(max(f["box"][2:]) for f in large) >= 60
    assert min(max(f["box"][2:]) for f in default) < 60
    assert run(capsys, "detect", photo, "--min-confidence", "1.5")[0] == 2


# ------------------------------------------------------------------------------ --model MODEL.keras


@pytest.fixture(scope="module")
def saved_encoder(tmp_path_factory):
    """A small NN4.small2 (random weights, 96x96 chips) saved as .keras: any trained encoder."""
    import keras

    from facenet_keras.models.nn4_small2 import nn4_small2

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "small.keras"
    nn4_small2(width=0.25).save(path)
    return path


def test_model_option_with_enroll_verify_recognize_evaluate(photos, saved_encoder, tmp_path, capsys):
    from facenet_keras.evaluation.embedding_cache import EmbeddingCache
    from facenet_keras.evaluation.protocols import primary_namespace
    from facenet_keras.faces.pipeline import embedding_key, embedding_space_id, encode

    model = str(saved_encoder)
    (a,), (b,), (c,) = (encode(photos[k], model=model) for k in ("grace", "grace2", "eileen"))
    assert a.embedding.shape == (128,)
    d_same, d_other = (float(np.linalg.norm(a.embedding - x.embedding)) for x in (b, c))

    g = tmp_path / "g.sqlite"
    assert run(capsys, "--gallery", g, "enroll", "grace", photos["grace"], "--model", model)[0] == 0
    listing = json.loads(run(capsys, "--gallery", g, "gallery", "list", "--json")[1])
    assert listing["embedding_space"] == embedding_space_id(model)
    # a trained encoder without its own threshold refuses to decide; with --threshold it answers
    code, _, err = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--model", model)
    assert code == 2 and "calibrate" in err
    _, out, _ = run(
        capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--model", model, "--json", "--threshold", "10"
    )
    assert json.loads(out)["distance"] == pytest.approx(d_same, abs=1e-4)
    _, out, _ = run(
        capsys, "--gallery", g, "--json", "recognize", photos["eileen"], "--model", model, "--threshold", "10"
    )
    (face,) = json.loads(out)[0]["faces"]
    assert face["identity"] == "grace" and face["distance"] == pytest.approx(d_other, abs=1e-4)

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "path1,path2,same,fold\n"
        f"{photos['grace']},{photos['grace2']},1,A\n{photos['grace']},{photos['eileen']},0,A\n"
        f"{photos['eileen']},{photos['eileen2']},1,B\n{photos['grace2']},{photos['eileen2']},0,B\n"
    )
    code, _, err = run(capsys, "evaluate", pairs, "--model", model, "--json", tmp_path / "r.json")
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed"] == 0
    # the embeddings came from the given model: they are in its cache namespace, equal to its output
    cache = EmbeddingCache(primary_namespace(embedding_key(model)))
    np.testing.assert_allclose(cache.get(photos["grace2"]), b.embedding, atol=1e-5)
    np.testing.assert_allclose(cache.get(photos["eileen"]), c.embedding, atol=1e-5)


def test_model_option_refuses_a_missing_file(photos, tmp_path, capsys):
    code, _, err = run(
        capsys, "--gallery", tmp_path / "g.sqlite", "enroll", "x", photos["grace"], "--model", tmp_path / "nope.keras"
    )
    assert code == 2 and "nope.keras" in err


# ------------------------------------------------------------------------------ make demo


def test_demo_main_runs_every_check(tmp_path, capsys):
    from pathlib import Path

    from facenet_keras.demo import main as demo_main

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "-m facenet_keras.demo" in makefile  # what `make demo` runs
    assert demo_main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "FAIL" not in out
    assert out.count("  ok    ") == 5
    assert (tmp_path / "demo-gallery.sqlite").is_file()
    annotated = Image.open(tmp_path / "demo-annotated.jpg")
    assert annotated.size[0] > annotated.size[1] > 100  # the side-by-side picture
