"""The JSON shapes the API answers with (and documents in its OpenAPI schema); errors are in :mod:`.errors`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FaceOut",
    "QualityOut",
    "DetectOut",
    "RecognitionOut",
    "RecognizeOut",
    "VerifyOut",
    "CompareOut",
    "PersonOut",
    "PeopleOut",
    "PhotoOut",
    "PersonPhotosOut",
    "EnrolledOut",
    "RenameIn",
    "RemovedOut",
    "LivenessOut",
    "ClipVerificationOut",
    "ChallengeOut",
    "JobOut",
    "StylesOut",
    "KeyOut",
]


class QualityOut(BaseModel):
    usable: bool
    reason: str | None = Field(
        description='why the gate turned the face away: "too small", "not a face?", "low quality"'
    )
    eye_distance: float = Field(description="px between the eyes in the photo")
    size: float
    score: float
    geometry: float
    yaw: float
    pitch: float
    roll: float
    sharpness: float


class FaceOut(BaseModel):
    box: list[float] = Field(description="x, y, w, h in pixels of the photo")
    confidence: float
    landmarks: dict[str, list[float]] = Field(description="five (x, y) points by name")
    gated: str | None = Field(
        None, description="null for a usable face, else why the quality gate turned it away (it is never named)"
    )
    quality: QualityOut | None = None


class DetectOut(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]


class RecognitionOut(FaceOut):
    identity: str | None = Field(description="who this is, or null when nobody enrolled is near enough")
    distance: float | None
    nearest: str | None
    runner_up: str | None
    runner_up_distance: float | None
    threshold: float


class RecognizeOut(BaseModel):
    width: int
    height: int
    faces: list[RecognitionOut]


class VerifyOut(BaseModel):
    match: bool
    identity: str
    distance: float
    threshold: float
    faces_found: int
    face: FaceOut


class CompareOut(BaseModel):
    match: bool
    distance: float
    threshold: float
    faces: list[FaceOut] = Field(description="the main face of each photo")
    faces_found: list[int]


class PersonOut(BaseModel):
    name: str
    photos: int


class PeopleOut(BaseModel):
    people: list[PersonOut]
    threshold: float | None
    model: str | None


class PhotoOut(BaseModel):
    id: int
    source: str | None
    box: list[float] | None


class PersonPhotosOut(BaseModel):
    name: str
    photos: list[PhotoOut]


class EnrolledOut(BaseModel):
    name: str
    photo_ids: list[int]
    photos: int
    warnings: list[str] = Field(
        default_factory=list, description="e.g. a new photo already within the threshold of another person"
    )


class RenameIn(BaseModel):
    model_config = ConfigDict(strict=True)  # a JSON string, nothing coerced into one

    name: str = Field(min_length=1, max_length=200, description="the new name")


class RemovedOut(BaseModel):
    removed: str
    photos: int


class ClipVerificationOut(BaseModel):
    match: bool = Field(description="the same person AND live: the one answer a door should act on")
    identity: str
    distance: float = Field(description="median over a few of the frames")
    threshold: float
    distance_match: bool = Field(description="the faces match, whether or not the face was live")


class LivenessOut(BaseModel):
    live: bool
    score: float
    reasons: list[str] = Field(description="one plain line per finding, failures first")
    cues: dict = Field(default_factory=dict)
    verification: ClipVerificationOut | None = Field(None, description="only when an 'identity' was given")


class ChallengeOut(BaseModel):
    token: str
    challenge: dict
    expires_in: float


class JobOut(BaseModel):
    id: str
    kind: str
    status: str = Field(description="queued, running, done or failed")
    progress: float
    message: str
    result: str | None = None


class KeyOut(BaseModel):
    id: str = Field(description="the key's public id (the part before the dot)")
    scope: str = Field(description="read, write or admin")
    label: str


class StylesOut(BaseModel):
    styles: list[str]
    methods: list[str]
    presets: list[str] = Field(
        default_factory=list, description="the fast built-in styles' names, for 'preset' with method 'fast'"
    )
