"""The JSON shapes of the photo library's People endpoints (:mod:`.routes.library`).

Kept apart from :mod:`.schemas` (the gallery, recognition and style shapes) so the two sets of
endpoints can change independently.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from facenet_keras.library.clustering import DEFAULT_METHOD

__all__ = [
    "ClusterIn",
    "ClusteringOut",
    "LibraryClusterOut",
    "LibraryClustersOut",
    "LibraryPersonOut",
    "LibraryPeopleOut",
    "NameClusterIn",
    "NamedClusterOut",
    "MergeIn",
    "MergedOut",
    "SplitIn",
    "SplitOut",
    "LibraryPhotoOut",
    "LibraryPhotosOut",
]

Method = Literal["average", "chinese-whispers", "single", "hdbscan"]
ClusterId = Annotated[int, Field(ge=0, le=2**31 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
# Request bodies take JSON types as they are: true is not a threshold (1.0) nor a cluster id (1).
STRICT = ConfigDict(strict=True)


class ClusterIn(BaseModel):
    model_config = STRICT

    method: Method = Field(DEFAULT_METHOD, description="clustering method (default: average linkage)")
    threshold: float | None = Field(
        None,
        gt=0,
        le=2,
        description="distance cut; default: derived from the encoder's calibration and the number of faces",
    )


class ClusteringOut(BaseModel):
    faces: int = Field(description="unnamed faces clustered")
    clusters: int
    unclustered: int = Field(description="faces left alone (no group of two or more)")
    threshold: float = Field(description="the distance cut used")
    method: str
    threshold_rule: str = Field(description="how the threshold was chosen")


class LibraryClusterOut(BaseModel):
    cluster: int
    faces: int
    sample: list[int] = Field(description="ids of its best faces, for GET /v1/library/faces/{id}/thumbnail")


class LibraryClustersOut(BaseModel):
    clusters: list[LibraryClusterOut] = Field(description="largest first")
    unclustered: int = Field(description="unnamed faces in no cluster")
    threshold: float | None = Field(description="the last clustering's distance cut (null: never clustered)")
    method: str | None


class LibraryPersonOut(BaseModel):
    name: str
    faces: int = Field(description="indexed faces named or recognised as this person")
    photos: int = Field(description="indexed photos with such a face")
    enrolled_photos: int = Field(description="photos enrolled in the gallery")
    sample: list[int]


class LibraryPeopleOut(BaseModel):
    people: list[LibraryPersonOut]


class NameClusterIn(BaseModel):
    model_config = STRICT

    name: str = Field(min_length=1, max_length=200, description="the person's name (an existing one adds to them)")


class NamedClusterOut(BaseModel):
    cluster: int
    name: str
    faces: int = Field(description="faces enrolled")


class MergeIn(BaseModel):
    model_config = STRICT

    into: ClusterId | Name = Field(description="what stays: a cluster id (a JSON number) or a person's name (a string)")
    merge: ClusterId | Name = Field(description="what is merged into it: a cluster id or a person's name")


class MergedOut(BaseModel):
    message: str


class SplitIn(BaseModel):
    model_config = STRICT

    threshold: float | None = Field(None, gt=0, le=2, description="the cut (default: 0.8 x the last clustering's)")


class SplitOut(BaseModel):
    cluster: int
    threshold: float
    parts: list[int] = Field(description="the cluster ids of the parts (the first keeps the old id)")
    sizes: list[int]
    unclustered: int


class LibraryPhotoOut(BaseModel):
    photo: str = Field(description="the photo's path on the server (its file name only, to a read key)")
    face: int = Field(description="the face's id (for its thumbnail)")
    box: list[float] = Field(description="x, y, w, h in pixels of the photo")
    distance: float | None = Field(description="to the person's nearest other enrolled photo (null: none)")
    how: str = Field(description="named, recognised (by a later index run) or matched (by this search)")


class LibraryPhotosOut(BaseModel):
    person: str
    threshold: float
    photos: list[LibraryPhotoOut] = Field(description="one per photo, nearest first")
