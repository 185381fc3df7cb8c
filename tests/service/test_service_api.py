"""The REST API against the real app (TestClient): real photos, real models, no mocks."""

from __future__ import annotations

import base64
import importlib.util
import io
import logging

import numpy as np
import pytest
from service_helpers import auth, clip_frames, png_bytes, wait_job

LIN = "Lin-Manuel Miranda"


@pytest.fixture(scope="session")
def photos(shared_data):
    video = shared_data / "video"
    frames, _ = clip_frames(video / "short_hamilton_clip.mp4", 5.0, 5.1)
    return {
        "lin_portrait": (video / "lin-manuel-miranda.png").read_bytes(),
        "lin_frame": png_bytes(frames[0]),
        "alex_portrait": (video / "alex-lacamoire.png").read_bytes(),
        "alex_1": (shared_data / "faces" / "alex_lacamoire" / "1.jpg").read_bytes(),
        "alex_2": (shared_data / "faces" / "alex_lacamoire" / "2.jpg").read_bytes(),
        "group": (shared_data / "group" / "face_recognition__obama_and_biden.jpg").read_bytes(),
    }


@pytest.fixture(scope="session")
def enrolled(client, keys, photos):
    """Lin enrolled from his portrait, Alex from one photo."""
    for name, photo in ((LIN, "lin_portrait"), ("Alex Lacamoire", "alex_1")):
        r = client.post(
            "/v1/people",
            data={"name": name},
            files=[("photos", (f"{photo}.png", photos[photo]))],
            headers=auth(keys["write"]),
        )
        assert r.status_code == 201, r.text
    return client


def test_probes_answer_without_a_key(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "headers, status", [({}, 401), ({"Authorization": "Bearer fk_0000.nope"}, 401), ({"X-API-Key": "not-a-key"}, 401)]
)
def test_keys_are_required_and_errors_are_json(client, photos, headers, status):
    r = client.post("/v1/recognize", files={"photo": ("a.png", photos["alex_2"])}, headers=headers)
    assert r.status_code == status
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == "unauthorized" and body["error"]["message"]
    assert "Traceback" not in r.text


def test_scopes_are_enforced(client, keys, photos):
    r = client.post(
        "/v1/people", data={"name": "x"}, files=[("photos", ("a.png", photos["alex_2"]))], headers=auth(keys["read"])
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/gallery/export", headers=auth(keys["write"])).status_code == 403
    assert client.get("/v1/people", headers={"X-API-Key": keys["read"]}).status_code == 200


def test_a_key_is_told_its_own_scope(client, keys):
    """GET /v1/keys/me (the page's key hint): the scope of each key, 401 for none or an unknown one."""
    for scope in ("read", "write", "admin"):
        me = client.get("/v1/keys/me", headers=auth(keys[scope])).json()
        assert me["scope"] == scope and keys[scope].startswith(f"fk_{me['id']}.") and me["label"] == f"test {scope}"
    assert client.get("/v1/keys/me").status_code == 401
    assert client.get("/v1/keys/me", headers=auth("fk_0000.nope")).status_code == 401


def test_recognize_names_the_enrolled_and_not_the_stranger(enrolled, keys, photos):
    r = enrolled.post("/v1/recognize", files={"photo": ("f.png", photos["lin_frame"])}, headers=auth(keys["read"]))
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert faces and faces[0]["identity"] == LIN and faces[0]["distance"] < faces[0]["threshold"]
    r = enrolled.post("/v1/recognize", files={"photo": ("a.jpg", photos["alex_2"])}, headers=auth(keys["read"]))
    assert r.json()["faces"][0]["identity"] == "Alex Lacamoire"
    r = enrolled.post("/v1/recognize", files={"photo": ("g.jpg", photos["group"])}, headers=auth(keys["read"]))
    assert len(r.json()["faces"]) >= 2 and all(f["identity"] is None for f in r.json()["faces"])


def test_recognize_matches_the_library(enrolled, keys, photos, settings):
    """The batched service path gives the in-process answer (same embedding, same distance)."""
    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.identity.recognition import recognize
    from facenet_keras.images import load_image

    r = enrolled.post("/v1/recognize", files={"photo": ("f.png", photos["lin_frame"])}, headers=auth(keys["read"]))
    with FaceGallery(settings.gallery) as g:
        direct = recognize(load_image(photos["lin_frame"]), g)
    assert [f["identity"] for f in r.json()["faces"]] == [d.identity for d in direct]
    np.testing.assert_allclose([f["distance"] for f in r.json()["faces"]], [d.distance for d in direct], atol=1e-4)


def test_verify_and_compare(enrolled, keys, photos):
    h = auth(keys["read"])
    r = enrolled.post("/v1/verify", data={"identity": LIN}, files={"photo": ("f.png", photos["lin_frame"])}, headers=h)
    assert r.status_code == 200 and r.json()["match"] is True
    r = enrolled.post("/v1/verify", data={"identity": LIN}, files={"photo": ("a.png", photos["alex_2"])}, headers=h)
    assert r.status_code == 200 and r.json()["match"] is False
    r = enrolled.post(
        "/v1/verify", data={"identity": "Nobody"}, files={"photo": ("a.png", photos["alex_2"])}, headers=h
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_person"
    same = enrolled.post(
        "/v1/compare", files={"photo1": ("1.jpg", photos["alex_1"]), "photo2": ("2.jpg", photos["alex_2"])}, headers=h
    ).json()
    other = enrolled.post(
        "/v1/compare",
        files={"photo1": ("1.jpg", photos["alex_1"]), "photo2": ("p.png", photos["lin_portrait"])},
        headers=h,
    ).json()
    assert same["match"] is True and other["match"] is False and same["distance"] < other["distance"]


def test_detect_finds_every_face(client, keys, photos):
    r = client.post("/v1/faces/detect", files={"photo": ("g.jpg", photos["group"])}, headers=auth(keys["read"]))
    faces = r.json()["faces"]
    assert len(faces) >= 2 and all(set(f) == {"box", "confidence", "landmarks", "gated", "quality"} for f in faces)
    assert all(f["gated"] is None or f["gated"] == f["quality"]["reason"] for f in faces)  # the gate's verdict


def test_bad_input_is_the_clients_fault(client, keys, photos, settings):
    h = auth(keys["read"])
    r = client.post("/v1/recognize", files={"photo": ("x.jpg", b"this is not a picture")}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_image"
    big = png_bytes(np.zeros((2600, 2600, 3), np.uint8))  # 6.8 Mpx, a small file
    r = client.post("/v1/recognize", files={"photo": ("big.png", big)}, headers=h)
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]
    r = client.post("/v1/recognize", files={"photo": ("x.bin", b"\0" * (settings.max_upload_bytes + 1))}, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    blank = png_bytes(np.full((200, 200, 3), 128, np.uint8))
    r = client.post("/v1/compare", files={"photo1": ("b.png", blank), "photo2": ("a.jpg", photos["alex_2"])}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_face"
    r = client.post("/v1/recognize", files={"photo": ("b.png", blank)}, headers=h)
    assert r.status_code == 200 and r.json()["faces"] == []
    r = client.post("/v1/recognize", data={"threshold": "-1"}, files={"photo": ("b.png", blank)}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_people_crud_and_export(enrolled, keys, photos):
    w, a = auth(keys["write"]), auth(keys["admin"])
    r = enrolled.post(
        "/v1/people",
        data={"name": "Temp"},
        files=[("photos", ("1.jpg", photos["alex_1"])), ("photos", ("2.jpg", photos["alex_2"]))],
        headers=w,
    )
    assert r.status_code == 201 and r.json()["photos"] == 2
    assert (
        enrolled.post(
            "/v1/people", data={"name": "Temp"}, files=[("photos", ("1.jpg", photos["alex_1"]))], headers=w
        ).status_code
        == 409
    )
    blank = png_bytes(np.full((200, 200, 3), 128, np.uint8))
    r = enrolled.post("/v1/people/Temp/photos", files=[("photos", ("b.png", blank))], headers=w)
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_face"
    assert enrolled.patch("/v1/people/Temp", json={"name": "Temp 2"}, headers=w).json() == {
        "name": "Temp 2",
        "photos": 2,
    }
    photo_list = enrolled.get("/v1/people/Temp 2", headers=w).json()["photos"]
    assert [p["source"] for p in photo_list] == ["1.jpg", "2.jpg"]
    assert enrolled.delete(f"/v1/people/Temp 2/photos/{photo_list[0]['id']}", headers=w).status_code == 200
    export = enrolled.get("/v1/gallery/export", headers=a).json()
    people = {p["name"]: p for p in export["people"]}
    assert export["format"] == "facenet-keras-gallery"  # the one portable format ('gallery import' reads it)
    (photo,) = people["Temp 2"]["photos"]
    assert np.frombuffer(base64.b64decode(photo["embedding"]), "<f4").shape == (128,)
    assert enrolled.delete("/v1/people/Temp 2", headers=w).json() == {"removed": "Temp 2", "photos": 1}
    assert enrolled.get("/v1/people/Temp 2", headers=w).status_code == 404
    assert "Temp 2" not in [p["name"] for p in enrolled.get("/v1/people", headers=w).json()["people"]]


def test_nothing_personal_is_logged(enrolled, keys, photos, caplog):
    with caplog.at_level(logging.DEBUG):
        enrolled.post(
            "/v1/people/Alex Lacamoire/photos",
            files=[("photos", ("secret-file.jpg", photos["alex_2"]))],
            headers=auth(keys["write"]),
        )
        enrolled.post(
            "/v1/verify",
            data={"identity": LIN},
            files={"photo": ("f.png", photos["lin_frame"])},
            headers=auth(keys["read"]),
        )
    # the service's own log (the test's HTTP client logs its URLs, which is not the server's doing)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "PIL")))
    assert "/v1/verify" in text  # the access log is on, and names the route
    for secret in ("Alex", "Lacamoire", "Miranda", "secret-file", keys["write"], keys["read"]):
        assert secret not in text


def test_metrics_count_requests_and_batches(enrolled, keys, photos):
    enrolled.post("/v1/recognize", files={"photo": ("a.jpg", photos["alex_2"])}, headers=auth(keys["read"]))
    text = enrolled.get("/metrics", headers=auth(keys["read"])).text
    assert 'facenet_requests_total{method="POST",route="/v1/recognize",status="200"}' in text
    assert 'facenet_request_seconds_bucket{le="+Inf",route="/v1/recognize"}' in text
    count = [line for line in text.splitlines() if line.startswith("facenet_encoder_batch_size_count")]
    assert count and float(count[0].split()[-1]) >= 1
    assert "Alex" not in text


def test_liveness_answers_501_without_the_liveness_module(client, keys):
    if importlib.util.find_spec("facenet_keras.live") is not None:
        pytest.skip("facenet_keras.live is installed: the liveness endpoints are live")
    r = client.get("/v1/liveness/challenge", headers=auth(keys["read"]))
    assert r.status_code == 501 and "facenet_keras.live.liveness" in r.json()["error"]["message"]


def test_stylize_runs_as_a_job(client, keys, shared_data):
    content = (shared_data / "style" / "content" / "chelsea_cat.png").read_bytes()
    r = client.post(
        "/v1/stylize",
        data={"style_name": "starry_night", "size": "64", "steps": "2"},
        files={"content": ("c.png", content)},
        headers=auth(keys["write"]),
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json(), auth(keys["write"]), ("vgg19",))  # the key that made it
    assert job["status"] == "done", job
    png = client.get(job["result"], headers=auth(keys["write"]))
    import io

    from PIL import Image

    assert png.headers["content-type"] == "image/png" and max(Image.open(io.BytesIO(png.content)).size) == 64
    for other in ("read", "admin"):  # the job and its image belong to the key that made it; to others: unknown
        for url in (f"/v1/jobs/{job['id']}", job["result"]):
            answer = client.get(url, headers=auth(keys[other]))
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", (other, url)
    assert (
        client.post(
            "/v1/stylize",
            data={"style_name": "no_such_style", "size": "64"},
            files={"content": ("c.png", content)},
            headers=auth(keys["write"]),
        ).status_code
        == 404
    )
    assert client.get("/v1/jobs/" + "0" * 32, headers=auth(keys["read"])).status_code == 404


def test_fast_style_with_no_model_given(client, keys, shared_data):
    """method 'fast' works out of the box: Magenta's networks, offline, one of the 26 built-in presets."""

    from PIL import Image

    styles = client.get("/v1/styles", headers=auth(keys["read"])).json()
    assert "fast" in styles["methods"] and len(styles["presets"]) == 26 and styles["presets"][7] == "night_blocks"
    content = (shared_data / "style" / "content" / "chelsea_cat.png").read_bytes()
    r = client.post(
        "/v1/stylize",
        data={"method": "fast", "preset": "night_blocks", "size": "64"},
        files={"content": ("c.png", content)},
        headers=auth(keys["write"]),
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json(), auth(keys["write"]), ("magenta",))
    assert job["status"] == "done", job
    out = np.asarray(Image.open(io.BytesIO(client.get(job["result"], headers=auth(keys["write"])).content)))
    photo = Image.open(io.BytesIO(content)).convert("RGB")
    photo.thumbnail((64, 64))
    assert out.shape == np.asarray(photo).shape  # 64 px on the long side
    assert np.abs(out.astype(float) - np.asarray(photo, float)).mean() > 20  # restyled, not the photo back
    from style_transfer.fast import stylize_preset
    from style_transfer.images import to_uint8

    # the name picks the same style as the Python API's name and the CLI's 0-based index 7
    same = to_uint8(stylize_preset(np.asarray(Image.open(io.BytesIO(content)).convert("RGB")), 7, size=64))
    assert np.abs(out.astype(int) - same.astype(int)).max() <= 1
    for data in ({"method": "optimize", "preset": "night_blocks"}, {"method": "fast", "preset": "7"}):
        r = client.post("/v1/stylize", data=data, files={"content": ("c.png", content)}, headers=auth(keys["write"]))
        assert r.status_code == 422 and r.json()["error"]["code"] in ("invalid_request", "validation_error"), r.text


def test_the_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "<video" in r.text and "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200


def test_a_slow_request_times_out_as_a_json_503(settings, keys, photos, tmp_path):
    """A request over the time limit is answered 503 'timeout' (the models are already built in this process).

    The 1 ms limit applies to /readyz too (on a busy machine every probe timed out and the wait gave
    up after 300 s), so readiness is read from the engine's own event."""
    from dataclasses import replace

    from fastapi.testclient import TestClient
    from service_helpers import wait_engine

    from facenet_keras.service.app import create_app

    quick = replace(settings, gallery=str(tmp_path / "g.sqlite"), request_timeout_s=0.001)
    with TestClient(create_app(quick), raise_server_exceptions=False) as c:
        wait_engine(c.app)
        r = c.post("/v1/recognize", files={"photo": ("a.jpg", photos["alex_2"])}, headers=auth(keys["read"]))
    assert r.status_code == 503 and r.json()["error"]["code"] == "timeout"


def test_liveness_clips_are_decoded_within_limits(shared_data):
    """What /v1/liveness reads from an uploaded video: frames, times from 0, and the limits."""
    from types import SimpleNamespace

    import av

    from facenet_keras.service.deps import decode_clip_upload
    from facenet_keras.service.errors import ServiceError

    reserved = []

    def decode_clip(data, max_frames, max_pixels):
        """The upload's decoding by a worker whose limits are these (it reserves what it decodes)."""
        e = SimpleNamespace(max_pixels=max_pixels, max_request_pixels=10**9, hold=reserved.append)
        return decode_clip_upload(e, data, max_frames)

    frames, _ = clip_frames(shared_data / "video" / "short_hamilton_clip.mp4", 5.0, 6.0, every=3, width=320)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    video, times = decode_clip(buf.getvalue(), max_frames=50, max_pixels=10**6)
    assert video.shape == (len(frames), *frames[0].shape) and times[0] == 0 and np.all(np.diff(times) > 0)
    assert abs(times[-1] - (len(frames) - 1) / 10) < 0.05
    assert reserved == [video.shape[0] * video.shape[1] * video.shape[2]]  # reserved before decoding
    for data, kw, status in [
        (buf.getvalue(), {"max_frames": 3, "max_pixels": 10**6}, 413),
        (buf.getvalue(), {"max_frames": 50, "max_pixels": 1000}, 413),
        (b"not a video at all", {"max_frames": 50, "max_pixels": 10**6}, 422),
    ]:
        with pytest.raises(ServiceError) as err:
            decode_clip(data, **kw)
        assert err.value.status == status
