"""The service follows the CLI's rulebook (issue 25): it serves a gallery only with the encoder it was
built with (``serve --model``, that encoder's own threshold; another space is refused at start-up, in
one line, exit 2), it enrols a photo with several faces only when told which, and ``/v1/compare``
answers with the package's :class:`~facenet_keras.identity.recognition.Comparison`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from service_helpers import auth, clip_frames, png_bytes, wait_ready

LIN = "Lin-Manuel Miranda"
SCALE = 1.1  # the user's encoder: the pretrained one with its last layer (a Dense, no bias) scaled
OWN_THRESHOLD = round(0.6 * SCALE, 4)  # its own threshold, stored in the .keras file


@pytest.fixture(scope="module")
def scaled_encoder(encoder, tmp_path_factory):
    """The pretrained encoder with its last layer's weights scaled by 1.1, saved as .keras with its own
    threshold (0.66): another embedding space, every distance 1.1 times the pretrained one."""
    import keras

    from facenet_keras.models.metadata import write_metadata

    model = keras.models.clone_model(encoder)
    model.set_weights(encoder.get_weights())
    last = [layer for layer in model.layers if layer.weights][-1]
    last.set_weights([w * SCALE for w in last.get_weights()])
    path = tmp_path_factory.mktemp("encoder") / "scaled.keras"
    model.save(path)
    write_metadata(path, threshold=OWN_THRESHOLD)
    return path


@pytest.fixture(scope="module")
def user_gallery(scaled_encoder, shared_data, tmp_path_factory):
    """Lin-Manuel Miranda enrolled with the user's encoder by 'facenet-keras enroll --model'."""
    from facenet_keras.cli import main

    path = tmp_path_factory.mktemp("user-gallery") / "g.sqlite"
    portrait = shared_data / "video" / "lin-manuel-miranda.png"
    assert main(["--gallery", str(path), "enroll", LIN, str(portrait), "--model", str(scaled_encoder)]) == 0
    return path


def serve(monkeypatch, *argv) -> tuple[int, list]:
    """``facenet-keras serve ...`` in-process, with uvicorn replaced by a recorder: (exit code, apps
    it would have served)."""
    import uvicorn

    from facenet_keras.cli import main

    served: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    return main(["serve", *argv]), served


def test_serve_refuses_a_gallery_of_another_space_and_serves_it_with_its_encoder(
    user_gallery, scaled_encoder, service_dir, keys, shared_data, monkeypatch, capsys
):
    from fastapi.testclient import TestClient

    from facenet_keras.faces.pipeline import embedding_space_id

    common = ["--gallery", str(user_gallery), "--keys", str(service_dir / "keys.json")]
    code, served = serve(monkeypatch, *common)
    err = capsys.readouterr().err.strip()
    assert code == 2 and not served, "a gallery of another embedding space was served"
    assert len(err.splitlines()) == 1 and "error" in err
    assert embedding_space_id(None) in err and embedding_space_id(str(scaled_encoder)) in err  # both spaces named

    code, served = serve(monkeypatch, *common, "--model", str(scaled_encoder))
    assert code == 0 and len(served) == 1
    frames, _ = clip_frames(shared_data / "video" / "short_hamilton_clip.mp4", 5.0, 5.1)
    with TestClient(served[0], raise_server_exceptions=False) as c:
        wait_ready(c.get)
        r = c.post("/v1/recognize", files={"photo": ("f.png", png_bytes(frames[0]))}, headers=auth(keys["read"]))
        assert r.status_code == 200, r.text
        (face,) = [f for f in r.json()["faces"] if f["identity"] is not None]
        assert face["identity"] == LIN and face["threshold"] == pytest.approx(OWN_THRESHOLD)  # the encoder's own
        r = c.get("/v1/library/people/" + LIN + "/photos", headers=auth(keys["read"]))
        assert r.status_code == 200 and r.json()["threshold"] == pytest.approx(OWN_THRESHOLD)


def test_the_app_without_the_encoder_is_not_ready_and_says_why(user_gallery, settings, keys, shared_data):
    """``create_app`` on its own (uvicorn's workers) refuses the gallery too: 503 naming the spaces,
    never an answer from mismatched embeddings."""
    import time

    from fastapi.testclient import TestClient

    from facenet_keras.service.app import create_app

    portrait = (shared_data / "video" / "lin-manuel-miranda.png").read_bytes()
    with TestClient(create_app(replace(settings, gallery=str(user_gallery))), raise_server_exceptions=False) as c:
        t0 = time.monotonic()
        while (r := c.get("/readyz")).status_code == 503 and "space" not in r.text and time.monotonic() - t0 < 300:
            time.sleep(0.5)
        assert r.status_code == 503 and "embeddings of space" in r.json()["error"]["message"]
        r = c.post("/v1/recognize", files={"photo": ("p.png", portrait)}, headers=auth(keys["read"]))
        assert r.status_code == 503 and "space" in r.json()["error"]["message"]


@pytest.fixture(scope="module")
def group(shared_data) -> bytes:
    return (shared_data / "group" / "face_recognition__obama_and_biden.jpg").read_bytes()


def test_enrolment_of_a_photo_with_several_faces_needs_a_choice(client, keys, group):
    w, r = auth(keys["write"]), auth(keys["read"])
    found = client.post("/v1/faces/detect", files={"photo": ("g.jpg", group)}, headers=r).json()["faces"]
    assert len(found) == 3
    before = client.get("/v1/people", headers=r).json()["people"]
    try:
        refused = client.post("/v1/people", data={"name": "Group"}, files=[("photos", ("g.jpg", group))], headers=w)
        assert refused.status_code == 422, "a photo with several faces was enrolled without a choice"
        error = refused.json()["error"]
        assert error["code"] == "several_faces" and "g.jpg shows 3 faces: say which to enrol" in error["message"]
        assert error["photo"] == 0 and [f["face"] for f in error["faces"]] == [0, 1, 2]
        areas = [f["box"][2] * f["box"][3] for f in error["faces"]]
        assert areas == sorted(areas, reverse=True)  # largest first, as face=INDEX counts
        expected = sorted((f["box"] for f in found), key=lambda b: -b[2] * b[3])
        np.testing.assert_allclose([f["box"] for f in error["faces"]], expected, atol=0.1)
        assert client.get("/v1/people", headers=r).json()["people"] == before  # nothing written

        made = client.post(
            "/v1/people", data={"name": "Group", "face": "0"}, files=[("photos", ("g.jpg", group))], headers=w
        )
        assert made.status_code == 201, made.text
        more = client.post("/v1/people/Group/photos", files=[("photos", ("g.jpg", group))], headers=w)
        assert more.status_code == 422 and more.json()["error"]["code"] == "several_faces"
        bad = client.post(
            "/v1/people/Group/photos", data={"face": "nine"}, files=[("photos", ("g.jpg", group))], headers=w
        )
        assert bad.status_code == 422 and "largest" in bad.json()["error"]["message"]
        # the same face under another name: enrolled as asked, with the rulebook's look-alike warning
        twin = client.post(
            "/v1/people",
            data={"name": "Group twin", "face": "largest"},
            files=[("photos", ("g.jpg", group))],
            headers=w,
        )
        assert twin.status_code == 201 and "already enrolled as 'Group'" in " ".join(twin.json()["warnings"])
        assert (
            client.post(
                "/v1/people", data={"name": "Group"}, files=[("photos", ("g.jpg", group))], headers=w
            ).status_code
            == 409
        )
    finally:
        for name in ("Group", "Group twin"):
            client.delete(f"/v1/people/{name}", headers=w)


def test_compare_answers_the_packages_comparison(client, keys, shared_data):
    from facenet_keras.identity.recognition import compare

    a, b = (shared_data / "faces" / "alex_lacamoire" / f"{i}.jpg" for i in (1, 2))
    r = client.post(
        "/v1/compare",
        files={"photo1": ("1.jpg", a.read_bytes()), "photo2": ("2.jpg", b.read_bytes())},
        headers=auth(keys["read"]),
    )
    assert r.status_code == 200, r.text
    direct = compare(a, b).to_dict()
    got = r.json()
    assert set(got) == set(direct) and got["match"] == direct["match"] and got["faces_found"] == direct["faces_found"]
    assert got["distance"] == pytest.approx(direct["distance"], abs=1e-4) and got["threshold"] == direct["threshold"]
