"""``/v1/liveness`` (passive) and ``/v1/liveness/challenge`` (prompts with a signed, expiring token):
is the face in a short clip or frame sequence live, and with ``identity`` the 1:1 match on the
same frames (a match counts only from a live face)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from facenet_keras.service.auth import ApiKey, TokenError, read_token, sign_token
from facenet_keras.service.budget import BudgetedRoute
from facenet_keras.service.deps import (
    READ,
    SettingsDep,
    decode_clip_upload,
    frames_stack,
    known_person,
    ready_engine,
)
from facenet_keras.service.engine import Engine
from facenet_keras.service.errors import ServiceError
from facenet_keras.service.schemas import ChallengeOut, LivenessOut
from facenet_keras.service.settings import Settings

__all__ = ["router"]

router = APIRouter(prefix="/v1/liveness", tags=["liveness"], route_class=BudgetedRoute)


class FramesIn:
    """The form fields both checks take: a video ``clip`` or still ``frames`` (with their ``times``, or
    ``fps``), and optionally the ``identity`` to verify on them (with a ``threshold``)."""

    def __init__(
        self,
        clip: UploadFile | None = File(None),
        frames: list[UploadFile] | None = File(None),
        fps: float = Form(10.0, gt=0, le=120),
        times: str | None = Form(None, max_length=8192),
        identity: str | None = Form(None, min_length=1, max_length=200),
        threshold: float | None = Form(None, gt=0, le=10),
    ):
        self.clip, self.frames, self.fps, self.times = clip, frames, fps, times
        self.identity, self.threshold = identity, threshold


FramesForm = Annotated[FramesIn, Depends()]


def liveness_module():
    try:
        from facenet_keras.live import liveness
    except ImportError:
        raise ServiceError(
            501,
            "not_available",
            "liveness checks need facenet_keras.live.liveness, which this installation does not have",
        ) from None
    return liveness


def frames_of(e: Engine, settings: Settings, form: FramesIn):
    """(T, H, W, 3) uint8 frames and their times (s) from a video clip or from still frames (times:
    the frames' own, comma-separated, from the start of the recording; default i / fps)."""
    from facenet_keras.live.frames import frame_times

    limit = settings.max_frames
    clip, frames, times = form.clip, form.frames, form.times
    if (clip is None) == (not frames):
        raise ServiceError(422, "invalid_request", "send either a video 'clip' or several 'frames', not both")
    if clip is not None:
        if times is not None:
            raise ServiceError(422, "invalid_request", "'times' goes with 'frames'; a clip carries its own")
        return decode_clip_upload(e, clip.file.read(), limit)
    if len(frames) > limit:
        raise ServiceError(413, "too_large", f"{len(frames)} frames is more than the limit of {limit}")
    return frames_stack(e, frames), frame_times(times, len(frames), form.fps)


def detector(e: Engine):
    from facenet_keras.faces.detection import shared_detector

    if not e.liveness_ready.is_set():
        raise ServiceError(503, "not_ready", "the liveness landmark model is still loading", {"Retry-After": "5"})
    if e.liveness_failure:
        raise ServiceError(501, "not_available", f"liveness is not available here: {e.liveness_failure}")
    return shared_detector(min_face_size=40)  # what the liveness thresholds were calibrated with


def check(e: Engine, video, times, challenge, identity: str | None, threshold: float | None) -> dict:
    """The liveness verdict, and with ``identity`` the 1:1 match on the same frames (a match counts
    only from a live face), through the worker's shared encoder."""
    if identity is None:
        return liveness_module().check_liveness(video, challenge, times=times, detector=detector(e)).to_dict()
    from facenet_keras.live.verify import verify_frames

    result = verify_frames(
        video,
        times,
        known_person(e, identity),
        e.gallery,
        threshold,
        challenge=challenge,
        model=e.model,
        detector=detector(e),
        encode=e.encode,
        source="the frames",
    )
    out = result.liveness.to_dict()
    out["verification"] = {k: v for k, v in result.to_dict().items() if k != "liveness"}
    return out


@router.get(
    "/challenge",
    response_model=ChallengeOut,
    summary="a random challenge (prompts with time windows) and its signed, expiring token",
)
def new_challenge(request: Request, settings: SettingsDep, key: ApiKey = READ):
    challenge = liveness_module().Challenge.random()
    token = sign_token(
        {"challenge": challenge.to_dict(), "kid": key.id}, request.app.state.secret, settings.challenge_ttl_s
    )
    return {"token": token, "challenge": challenge.to_dict(), "expires_in": settings.challenge_ttl_s}


@router.post(
    "/challenge",
    response_model=LivenessOut,
    summary="check frames recorded while the challenge's prompts were shown (and, with 'identity', "
    "verify the person on them: a match only from a live face)",
)
def answer_challenge(
    request: Request,
    settings: SettingsDep,
    form: FramesForm,
    token: str = Form(..., max_length=4096),
    key: ApiKey = READ,
):
    lv = liveness_module()
    try:
        body = read_token(token, request.app.state.secret)
    except TokenError as exc:
        raise ServiceError(422, "bad_token", str(exc)) from None
    if body.get("kid") != key.id:
        raise ServiceError(403, "forbidden", "this challenge was issued to another API key")
    try:
        challenge = lv.Challenge(
            tuple(lv.Prompt(p["action"], float(p["start"]), float(p["end"])) for p in body["challenge"]["prompts"])
        )
    except (KeyError, TypeError, ValueError) as exc:  # signed by us, so only a bug or an old format
        raise ServiceError(422, "bad_token", f"the challenge in the token is not readable ({exc})") from None
    e = ready_engine(request)
    video, stamps = frames_of(e, settings, form)
    return check(e, video, stamps, challenge, form.identity, form.threshold)


@router.post(
    "",
    response_model=LivenessOut,
    dependencies=[READ],
    summary="passive liveness of one face in a short clip or a frame sequence (and, with 'identity', "
    "1:1 verification on the same frames)",
)
def liveness(
    request: Request,
    settings: SettingsDep,
    form: FramesForm,
):
    liveness_module()
    e = ready_engine(request)
    video, stamps = frames_of(e, settings, form)
    return check(e, video, stamps, None, form.identity, form.threshold)
