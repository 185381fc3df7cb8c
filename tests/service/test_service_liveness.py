"""The liveness endpoints against the real app (TestClient) and the real facenet_keras.live: a real
clip of the performer passes, a photo of him held up to the camera does not, the challenge's prompts
are checked in their time windows, and challenge tokens are refused when expired, tampered with or
issued by another secret, but accepted by any instance holding the same secret (as workers are)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np
import pytest
from service_helpers import auth, clip_frames, jpeg_bytes, spoof_frames, wait_liveness, wait_ready

pytest.importorskip("av")

LIN = "Lin-Manuel Miranda"
CLIP = "short_hamilton_clip.mp4"
# What he does in 3.0-7.0 s of the clip, read off its head yaw at 10 fps (times from 3.0 s): turns to
# his right (0.6-1.8 s), to his left (2.2-3.1 s), to his right again (3.2-3.9 s).
MATCHING = [("turn_right", 0.5, 2.0), ("turn_left", 2.0, 3.2), ("turn_right", 3.2, 4.0)]
MIRRORED = [({"turn_right": "turn_left", "turn_left": "turn_right"}[a], s, e) for a, s, e in MATCHING]


@pytest.fixture(scope="module")
def lin(client, keys, shared_data):
    """Lin-Manuel Miranda enrolled from his portrait (already there if another module enrolled him)."""
    r = client.post(
        "/v1/people",
        data={"name": LIN},
        files=[("photos", ("p.png", (shared_data / "video" / "lin-manuel-miranda.png").read_bytes()))],
        headers=auth(keys["write"]),
    )
    assert r.status_code in (201, 409), r.text
    wait_liveness(client.get)
    return client


@pytest.fixture(scope="module")
def performance(shared_data):
    """3.0-7.0 s of the clip at 10 fps, 480 px wide, as the page sends it: JPEG frames and their times."""
    frames, fps = clip_frames(shared_data / "video" / CLIP, 3.0, 7.0, every=3, width=480)
    return [jpeg_bytes(f) for f in frames], np.arange(len(frames)) / fps


def frames_form(jpegs, times) -> tuple[dict, list]:
    data = {"times": ",".join(f"{t:.3f}" for t in times)}
    return data, [("frames", (f"f{i}.jpg", b)) for i, b in enumerate(jpegs)]


def secret_of(settings) -> bytes:
    from pathlib import Path

    from facenet_keras.service.auth import load_secret

    return load_secret(settings.secret or Path(settings.keys).parent / "secret.key")


def token_for(prompts, settings, key: str, ttl_s: float = 60.0) -> str:
    """A challenge token signed with the service's own secret, for prompts chosen by the test."""
    from facenet_keras.service.auth import sign_token

    challenge = {"prompts": [{"action": a, "start": s, "end": e} for a, s, e in prompts]}
    return sign_token({"challenge": challenge, "kid": key[3:].partition(".")[0]}, secret_of(settings), ttl_s)


def mp4_bytes(frames: list[np.ndarray], fps: int = 10) -> bytes:
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


def test_a_live_clip_passes_and_his_photo_held_up_does_not(lin, keys, shared_data, detector):
    """Passive cues on a real 2 s clip (an mp4 upload) and on a print of the same man's portrait moved
    by hand (frames): both match him, only the clip is live, so only the clip verifies."""
    h = auth(keys["read"])
    frames, _ = clip_frames(shared_data / "video" / CLIP, 4.0, 6.0, every=3, width=480)
    r = lin.post("/v1/liveness", data={"identity": LIN}, files={"clip": ("c.mp4", mp4_bytes(frames))}, headers=h)
    assert r.status_code == 200, r.text
    real = r.json()
    assert real["live"] and "3-D motion" in real["reasons"][0], real
    assert real["verification"]["match"] and real["verification"]["identity"] == LIN

    spoof, times = spoof_frames(shared_data, seed=7, seconds=2.0, detector=detector)
    data, files = frames_form([jpeg_bytes(f) for f in spoof[::3]], times[::3])
    r = lin.post("/v1/liveness", data=data | {"identity": LIN}, files=files, headers=h)
    assert r.status_code == 200, r.text
    fake = r.json()
    assert not fake["live"] and "flat" in fake["reasons"][0], fake
    assert fake["verification"]["distance_match"] and not fake["verification"]["match"]


def test_the_challenge_prompts_are_checked_in_their_windows(lin, keys, settings, performance):
    """The same recording passes the challenge that matches what he did, and fails its mirror image."""
    data, files = frames_form(*performance)
    answers = {}
    for name, prompts in (("matching", MATCHING), ("mirrored", MIRRORED)):
        token = token_for(prompts, settings, keys["read"])
        r = lin.post("/v1/liveness/challenge", data=data | {"token": token}, files=files, headers=auth(keys["read"]))
        assert r.status_code == 200, r.text
        answers[name] = r.json()
    assert answers["matching"]["live"] and answers["matching"]["cues"]["challenge"]["met"] == 3, answers["matching"]
    assert not answers["mirrored"]["live"] and answers["mirrored"]["cues"]["challenge"]["met"] == 0
    assert answers["mirrored"]["reasons"][0].startswith("challenge failed: turn left")


def test_challenge_tokens_any_instance_with_the_secret_accepts_others_refuse(
    lin, keys, settings, performance, tmp_path
):
    from fastapi.testclient import TestClient

    from facenet_keras.service.app import create_app

    h = auth(keys["read"])
    issued = lin.get("/v1/liveness/challenge", headers=h)
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    prompts = issued.json()["challenge"]["prompts"]
    assert len(prompts) == 3 and {p["action"] for p in prompts} <= {"turn_left", "turn_right", "blink"}
    data, files = frames_form(*performance)

    def refused(client, token, headers=h):
        r = client.post("/v1/liveness/challenge", data=data | {"token": token}, files=files, headers=headers)
        assert r.headers["content-type"] == "application/json"
        return r.status_code, r.json()["error"]["code"], r.json()["error"]["message"]

    raw, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    body["exp"] += 3600  # a longer life, or an easier challenge: the signature no longer matches
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode() + "." + sig
    assert refused(lin, forged) == (422, "bad_token", "token signature does not match (not issued by this service)")
    expired = token_for(MATCHING, settings, keys["read"], ttl_s=-1)
    assert refused(lin, expired) == (422, "bad_token", "token expired: ask for a new challenge")
    assert refused(lin, "not-a-token")[:2] == (422, "bad_token")
    assert refused(lin, token, auth(keys["write"]))[:2] == (403, "forbidden")  # issued to another key

    # another instance (another worker) sharing the secret accepts it; one with its own secret does not
    other = replace(settings, gallery=str(tmp_path / "g.sqlite"))
    with TestClient(create_app(other), raise_server_exceptions=False) as c:
        wait_liveness(c.get)
        r = c.post("/v1/liveness/challenge", data=data | {"token": token}, files=files, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["cues"]["challenge"]["prompts"] == prompts
    stranger = replace(other, secret=str(tmp_path / "another.key"))
    with TestClient(create_app(stranger), raise_server_exceptions=False) as c:
        wait_ready(c.get)
        assert refused(c, token)[:2] == (422, "bad_token")


def test_liveness_requests_that_cannot_be_answered(lin, keys, performance):
    h = auth(keys["read"])
    jpegs, times = performance
    data, files = frames_form(jpegs[:12], times[:12])
    for extra, status in [
        ({"times": "0,0.1"}, 422),  # not one time per frame
        ({"times": ",".join(["x"] * 12)}, 422),
        ({"times": ",".join(f"{1 - t:.2f}" for t in times[:12])}, 422),  # out of order
        ({"identity": "Nobody Enrolled"}, 404),
    ]:
        r = lin.post("/v1/liveness", data=data | extra, files=files, headers=h)
        assert r.status_code == status and "error" in r.json(), (extra, r.text)
