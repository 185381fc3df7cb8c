# ruff: noqa: E501  (the table of outcomes below is one row per line)
"""One hostile set through every door: the same photo gets the same decision everywhere.

The doors: the Python API (``fk.*``), the CLI (in-process), HTTP (the app under a TestClient, and
``serve``'s own start-up check), ``watch`` (on a clip made from a still photo), the photo library
(index and search) and the course functions. They share one pipeline owner
(:class:`facenet_keras.faces.pipeline.FacePipeline`) and one rulebook
(:mod:`facenet_keras.identity.rules`); this module checks that no door answers where another refuses.

Expected outcome per case and door ("n/a": the door cannot be asked that question):

| case | Python API | CLI | HTTP | watch | library | course |
|---|---|---|---|---|---|---|
| gallery of another space | EmbeddingSpaceError | exit 2 | `serve` exit 2 (refuses to start) | EmbeddingSpaceError | index: EmbeddingSpaceError; search: EmbeddingSpaceError | gallery: EmbeddingSpaceError; dict: its Encoding values carry their space, another one -> EmbeddingSpaceError |
| photo with several faces to enrol | SeveralFacesError (a ValueError) | exit 2, nothing enrolled | 422 `several_faces`, the faces' boxes, nothing enrolled | n/a (does not enrol) | n/a (names clusters, not photos) | n/a (img_to_encoding encodes the main face: a lookup, not an enrolment) |
| one person enrolled under two names | Enrolment.warnings | exit 0, warning on stderr | 201, `warnings` in the body | n/a | n/a | n/a (a dict has no names to compare) |
| a non-face detection (the jacket button) | recognize: identity None, ``face.gated`` set | JSON `gated`, not named | 200, `gated` set, identity null | not detected by default (min 40 px, frames shrunk to 640 px); with the detector's own `min_face_size=20, max_side=1024` its track is gated on every frame, its events carry `gated`, never identified | indexed with its reason, never clustered | n/a (only the main face is encoded) |
| a face too small to recognise | recognize: gated "too small"; verify: UnusableFaceError | verify exit 2; recognize exit 1 with the reason | verify 422; recognize 200 with `gated` | not detected by default (min 40 px); with `min_face_size=20` tracked gated, never identified | indexed gated, never clustered | UnusableFaceError |
| unreadable file (not an image; a JPEG whose image data is too short for its size) | ImageError | exit 2 | 422 | VideoError | per-file failure in the report (exit 0; `--strict` exit 2) | ImageError |
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from service_helpers import auth, wait_ready

import facenet_keras as fk
from facenet_keras.cli import main

GROUP = "group/face_recognition__obama_and_biden.jpg"
BUTTON_PHOTO = "faces/barack_obama/3.jpg"  # a 23x28 px jacket button is detected as a face (score > 0.8)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _small_face(portrait: np.ndarray) -> np.ndarray:
    """The portrait shrunk onto a grey canvas until the pipeline finds its face but the gate calls it
    "too small" (the largest such scale): a real face, detected, too small to recognise."""
    from facenet_keras.faces.pipeline import pipeline_for

    pipe = pipeline_for(None)
    h, w = portrait.shape[:2]
    for side in range(140, 20, -4):
        small = np.asarray(Image.fromarray(portrait).resize((side * w // h, side), Image.Resampling.LANCZOS))
        canvas = np.full((320, 320, 3), 128, np.uint8)
        canvas[100 : 100 + small.shape[0], 100 : 100 + small.shape[1]] = small
        faces = pipe.detect(canvas)
        if len(faces) == 1 and faces[0].gated == "too small":
            return canvas
    raise AssertionError("no scale of the portrait gives a detected face that the gate calls too small")


@pytest.fixture(scope="module")
def door(tmp_path_factory, shared_data, encoder):
    """The hostile set: photos, a gallery of another embedding space, a gallery of the default one."""
    import keras

    from facenet_keras.demo import changed_copy, sample_portraits
    from facenet_keras.models.metadata import write_metadata

    root = tmp_path_factory.mktemp("doors")
    people = sample_portraits()
    p = SimpleNamespace(root=root)
    for key, image in [
        ("grace", people["Grace Hopper"]),
        ("grace2", changed_copy(people["Grace Hopper"])),
        ("eileen", people["Eileen Collins"]),
        ("small", _small_face(people["Grace Hopper"])),
    ]:
        setattr(p, key, root / f"{key}.jpg")
        Image.fromarray(image).save(getattr(p, key), quality=95)
    p.broken = root / "broken.jpg"
    p.broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all" * 4)
    # a JPEG claiming 5000x5000 whose image data stops after 80 bytes (libjpeg would decode grey)
    buf = io.BytesIO()
    Image.new("RGB", (5000, 5000), (200, 10, 10)).save(buf, "JPEG")
    whole = buf.getvalue()
    p.truncated = root / "truncated.jpg"
    p.truncated.write_bytes(whole[: whole.index(b"\xff\xda") + 80] + b"\xff\xd9")
    p.group, p.button = shared_data / GROUP, shared_data / BUTTON_PHOTO

    # another embedding space: the pretrained encoder with its last layer's weights scaled by 1.1
    other = keras.models.clone_model(encoder)
    other.set_weights(encoder.get_weights())
    last = [layer for layer in other.layers if layer.weights][-1]
    last.set_weights([w * 1.1 for w in last.get_weights()])
    p.other_model = root / "other.keras"
    other.save(p.other_model)
    write_metadata(p.other_model, threshold=0.66)
    p.other_gallery = root / "other.sqlite"
    with fk.FaceGallery(p.other_gallery) as g:
        g.enroll("grace", p.grace, model=str(p.other_model))
    p.gallery = root / "main.sqlite"
    with fk.FaceGallery(p.gallery) as g:
        g.enroll("grace", p.grace)
    return p


@pytest.fixture(scope="module")
def http(door, settings):
    """The app on the default gallery (a copy, so enrolments here do not leak into other tests)."""
    from fastapi.testclient import TestClient

    from facenet_keras.service.app import create_app

    copy = door.root / "http.sqlite"
    copy.write_bytes(door.gallery.read_bytes())
    with TestClient(create_app(replace(settings, gallery=str(copy))), raise_server_exceptions=False) as c:
        wait_ready(c.get)
        yield c


def _upload(path, name="photo"):
    return (name, (path.name, path.read_bytes(), "image/jpeg"))


def _clip(door, photo, name: str):
    """A 2 s clip made from one still photo: the same frame 20 times at 10 fps (decoded frames, so no
    video codec moves a marginal detection such as the button's)."""
    from facenet_keras.images import load_image
    from facenet_keras.live.frames import Frame

    image = load_image(photo)
    return [Frame(i, i / 10.0, image) for i in range(20)]


def _watch_all(source, gallery, **kw):
    return list(fk.watch(source, gallery, every=5, **kw))


# ---------------------------------------------------------------------------- another space
def test_a_gallery_of_another_space_is_refused_at_every_door(door, capsys, monkeypatch):
    from facenet_keras.course import img_to_encoding, verify, who_is_it
    from facenet_keras.library.search import photos_of

    # Python API
    with fk.FaceGallery(door.other_gallery) as g:
        with pytest.raises(fk.EmbeddingSpaceError):
            fk.recognize(door.grace, g)
        with pytest.raises(fk.EmbeddingSpaceError):
            fk.verify(door.grace, "grace", g)
        # watch
        with pytest.raises(fk.EmbeddingSpaceError):
            _watch_all(_clip(door, door.grace, "grace"), g)
        # library: index and search
        (door.root / "lib").mkdir(exist_ok=True)
        Image.open(door.grace).save(door.root / "lib" / "grace.jpg")
        with pytest.raises(fk.EmbeddingSpaceError):
            fk.index(door.root / "lib", g, library=door.root / "other.library.sqlite")
        from facenet_keras.library.store import open_library

        with open_library(door.root / "other2.library.sqlite") as lib, pytest.raises(fk.EmbeddingSpaceError):
            photos_of(lib, g, "grace")
        # course functions: a gallery, and a dict of encodings made by the other encoder
        with pytest.raises(fk.EmbeddingSpaceError):
            verify(door.grace, "grace", g)
    database = {"grace": img_to_encoding(door.grace, str(door.other_model))}
    with pytest.raises(fk.EmbeddingSpaceError):
        who_is_it(door.grace, database)
    # CLI
    code, _, err = run(capsys, "recognize", door.grace, "--gallery", door.other_gallery)
    assert code == 2 and "embeddings of space" in err
    # HTTP: the server refuses to start on it, in one line (uvicorn replaced by a recorder: never served)
    import uvicorn

    served: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    code, _, err = run(capsys, "serve", "--gallery", door.other_gallery, "--port", "1")
    assert not served, "serve started on a gallery of another embedding space"
    assert code == 2 and "embeddings of space" in err and len(err.strip().splitlines()) == 1
    # ... and with the encoder it was built with, everything answers
    with fk.FaceGallery(door.other_gallery) as g:
        (r,) = fk.recognize(door.grace2, g, model=str(door.other_model))
        assert r.identity == "grace"


# ---------------------------------------------------------------------------- several faces
def test_a_photo_with_several_faces_is_enrolled_only_when_told_which(door, capsys, http, keys):
    from facenet_keras.identity.rules import SeveralFacesError

    target = door.root / "several.sqlite"
    with fk.FaceGallery(target) as g:
        with pytest.raises(SeveralFacesError, match="say which"):
            g.enroll("obama", door.group)
        assert len(g) == 0
        g.enroll("obama", door.group, face="largest")  # told which: enrolled
        assert g.people() == {"obama": 1}
    code, _, err = run(capsys, "enroll", "biden", door.group, "--gallery", door.root / "several2.sqlite")
    assert code == 2 and "--face" in err
    w = auth(keys["write"])
    r = http.post("/v1/people", data={"name": "obama"}, files=[_upload(door.group, "photos")], headers=w)
    assert r.status_code == 422, r.text
    assert len(r.json()["error"]["faces"]) >= 2
    assert http.get("/v1/people/obama", headers=w).status_code == 404
    r = http.post(
        "/v1/people", data={"name": "obama", "face": "largest"}, files=[_upload(door.group, "photos")], headers=w
    )
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------- two names
def test_one_photo_enrolled_under_two_names_is_warned_at_every_door(door, capsys, http, keys):
    target = door.root / "twice.sqlite"
    with fk.FaceGallery(target) as g:
        g.enroll("grace", door.grace)
        done = g.enroll("amazing grace", door.grace)
        assert any("already enrolled as" in w for w in done.warnings), done.warnings
        done = g.enroll("ms hopper", door.grace2)  # another photo of her: a look-alike warning
        assert any("looks like" in w for w in done.warnings), done.warnings
    code, _, err = run(capsys, "enroll", "hopper", door.grace, "--gallery", target)
    assert code == 0 and "already enrolled as" in err
    w = auth(keys["write"])
    r = http.post("/v1/people", data={"name": "rear admiral"}, files=[_upload(door.grace, "photos")], headers=w)
    assert r.status_code == 201, r.text
    assert any("already enrolled as" in x for x in r.json()["warnings"]), r.json()


# ---------------------------------------------------------------------------- a non-face
def _button(faces):
    """The detection of the jacket button: the small one, low on the photo."""
    small = [f for f in faces if f.box[2] < 40]
    assert small, f"the button is no longer detected: {faces}"
    return small[0]


def test_the_jacket_button_is_never_named_at_any_door(door, capsys, http, keys):
    from facenet_keras.library.store import open_library

    with fk.FaceGallery(door.gallery) as g:
        faces = fk.recognize(door.button, g)
        button = [r for r in faces if r.face.box[2] < 40]
        assert button and all(r.identity is None and r.nearest is None and r.face.gated for r in button)
        reason = button[0].face.gated
        # watch: the button's track is followed, drawn grey, never identified
        results = _watch_all(
            _clip(door, door.button, "button"), g, min_face_size=20, max_side=1024
        )  # as recognize finds it
        small_tracks = {f.track for res in results for f in res.faces if f.box[2] < 40}
        assert small_tracks
        for res in results:
            for f in res.faces:
                if f.track in small_tracks:
                    assert f.identity is None and f.gated == reason
        events = [e.to_dict() for res in results for e in res.events if e.track in small_tracks]
        assert events and all(e.get("gated") == reason for e in events if e["event"] != "identified")
        assert not any(e["event"] == "identified" for e in events)  # the JSON lines carry the reason
        # library: indexed with its reason, never clustered
        lib_dir = door.root / "lib_button"
        lib_dir.mkdir(exist_ok=True)
        (lib_dir / "obama.jpg").write_bytes(door.button.read_bytes())
        report = fk.index(lib_dir, g, library=door.root / "button.library.sqlite")
        assert report.gated.get(reason, 0) >= 1
    with open_library(door.root / "button.library.sqlite") as lib:
        gated = [f for f in lib.faces() if f.gated]
        assert gated and all(f.person is None for f in gated)
        ids, _ = lib.embeddings(unnamed=True)
        assert not set(ids.tolist()) & {f.id for f in gated}
    # CLI: the JSON carries the reason, nobody is named
    code, out, _ = run(capsys, "recognize", door.button, "--gallery", door.gallery, "--json")
    payload = json.loads(out)[0]["faces"]
    assert code == 1 and [f["gated"] for f in payload if f["box"][2] < 40] == [reason]
    assert all(f["identity"] is None for f in payload)
    # HTTP
    r = http.post("/v1/recognize", files=[_upload(door.button)], headers=auth(keys["read"]))
    assert r.status_code == 200, r.text
    small = [f for f in r.json()["faces"] if f["box"][2] < 40]
    assert [f["gated"] for f in small] == [reason] and all(f["identity"] is None for f in small)


# ---------------------------------------------------------------------------- too small
def test_a_face_too_small_to_recognise_is_reported_not_named(door, capsys, http, keys):
    from facenet_keras.course import img_to_encoding
    from facenet_keras.faces.pipeline import UnusableFaceError

    with fk.FaceGallery(door.gallery) as g:
        (r,) = fk.recognize(door.small, g)
        assert r.identity is None and r.face.gated == "too small"
        with pytest.raises(UnusableFaceError, match="too small"):
            fk.verify(door.small, "grace", g)
        # watch skips faces under 40 px by default (too small to follow); asked to find them, it gates them
        results = _watch_all(_clip(door, door.small, "small"), g, min_face_size=20)
        faces = [f for res in results for f in res.faces]
        assert faces and all(f.identity is None and f.gated == "too small" for f in faces)
        assert not any(e.kind == "identified" and e.identity for res in results for e in res.events)
        lib_dir = door.root / "lib_small"
        lib_dir.mkdir(exist_ok=True)
        (lib_dir / "small.jpg").write_bytes(door.small.read_bytes())
        report = fk.index(lib_dir, g, library=door.root / "small.library.sqlite")
        assert report.gated == {"too small": 1} and not report.assigned
    with pytest.raises(UnusableFaceError, match="too small"):
        img_to_encoding(door.small)
    code, _, err = run(capsys, "verify", door.small, "grace", "--gallery", door.gallery)
    assert code == 2 and "too small" in err
    code, out, _ = run(capsys, "recognize", door.small, "--gallery", door.gallery)
    assert code == 1 and "too small" in out
    r = http.post("/v1/verify", data={"identity": "grace"}, files=[_upload(door.small)], headers=auth(keys["read"]))
    assert r.status_code == 422 and "too small" in r.text
    r = http.post("/v1/recognize", files=[_upload(door.small)], headers=auth(keys["read"]))
    assert r.status_code == 200 and [f["gated"] for f in r.json()["faces"]] == ["too small"]


# ---------------------------------------------------------------------------- unreadable
@pytest.mark.parametrize("which", ["broken", "truncated"])
def test_an_unreadable_file_is_a_clear_error_at_every_door(door, capsys, http, keys, which):
    from facenet_keras.course import img_to_encoding
    from facenet_keras.live.frames import VideoError

    bad = getattr(door, which)
    with fk.FaceGallery(door.gallery) as g:
        with pytest.raises(fk.ImageError):
            fk.recognize(bad, g)
        with pytest.raises(VideoError):
            _watch_all(bad, g)
        lib_dir = door.root / f"lib_{which}"
        lib_dir.mkdir(exist_ok=True)
        (lib_dir / bad.name).write_bytes(bad.read_bytes())
        report = fk.index(lib_dir, g, library=door.root / f"{which}.library.sqlite")
        assert list(report.failed) == [str(lib_dir / bad.name)]
    with pytest.raises(fk.ImageError):
        img_to_encoding(bad)
    assert run(capsys, "recognize", bad, "--gallery", door.gallery)[0] == 2
    code, _, _ = run(capsys, "index", lib_dir, "--gallery", door.gallery, "--library", door.root / f"{which}2.sqlite")
    assert code == 0
    code, _, _ = run(
        capsys,
        "index",
        lib_dir,
        "--gallery",
        door.gallery,
        "--library",
        door.root / f"{which}3.sqlite",
        "--strict",
    )
    assert code == 2
    r = http.post("/v1/recognize", files=[_upload(bad)], headers=auth(keys["read"]))
    assert r.status_code == 422


# ---------------------------------------------------------------------------- the encoder's own chips
def test_every_door_cuts_the_encoders_own_chips(door, tmp_path):
    """An encoder with 96 px input (NN4.small2) works through watch, and fk.align_faces gives exactly
    the chips the pipeline encodes: encode_chips(align_faces(photo)) is the pipeline's embedding."""
    from facenet_keras.faces.pipeline import FacePipeline
    from facenet_keras.models.metadata import write_metadata
    from facenet_keras.models.nn4_small2 import nn4_small2

    small = tmp_path / "nn4.keras"
    nn4_small2(width=0.25).save(small)
    write_metadata(small, threshold=0.5)
    gallery = tmp_path / "nn4.sqlite"
    with fk.FaceGallery(gallery) as g:
        g.enroll("grace", door.grace, model=str(small), force=True)
        results = _watch_all(_clip(door, door.grace2, "grace2"), g, model=str(small))
        assert any(f.track is not None for res in results for f in res.faces)
    chips = fk.align_faces(door.grace2, model=str(small))
    assert chips.shape[1:] == (96, 96, 3)
    chips = fk.align_faces(door.grace2)
    assert chips.shape[1:] == (150, 150, 3)
    (face,) = FacePipeline(flip=False).encode(door.grace2)
    np.testing.assert_allclose(fk.encode_chips(chips)[0], face.embedding, atol=1e-5)


# ---------------------------------------------------------------------------- the encoder's own threshold
def test_every_door_decides_with_the_encoders_own_threshold(door, capsys, tmp_path):
    """An encoder whose stored threshold is 0.05 (the other space's weights): each door reports and
    decides with 0.05, never the pretrained encoder's 0.6 (at 0.6 Grace's changed copy would match)."""
    from facenet_keras.course import img_to_encoding, verify, who_is_it
    from facenet_keras.models.metadata import write_metadata

    strict = tmp_path / "strict.keras"
    strict.write_bytes(door.other_model.read_bytes())
    write_metadata(strict, threshold=0.05)
    gallery = tmp_path / "strict.sqlite"
    gallery.write_bytes(door.other_gallery.read_bytes())
    model = str(strict)
    with fk.FaceGallery(gallery) as g:
        (r,) = fk.recognize(door.grace2, g, model=model)
        assert r.threshold == pytest.approx(0.05) and r.identity is None and r.distance < 0.6
        lib_dir = tmp_path / "lib"
        lib_dir.mkdir()
        (lib_dir / "grace2.jpg").write_bytes(door.grace2.read_bytes())
        report = fk.index(lib_dir, g, library=tmp_path / "strict.library.sqlite", model=model)
        assert report.threshold == pytest.approx(0.05) and not report.assigned
        dist, door_open = verify(door.grace2, "grace", g, model)
        assert dist < 0.6 and not door_open
    database = {"grace": img_to_encoding(door.grace, model)}
    dist, door_open = verify(door.grace2, "grace", database, model)
    assert dist < 0.6 and not door_open
    assert who_is_it(door.grace2, database, model)[1] is None
    code, out, _ = run(capsys, "recognize", door.grace2, "--gallery", gallery, "--model", strict, "--json")
    assert code == 1 and json.loads(out)[0]["faces"][0]["threshold"] == pytest.approx(0.05)
