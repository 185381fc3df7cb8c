"""Profiles: which encoders turn a face into its one stored vector. ``fast``: dlib's ResNet alone
(today's embedding space, unchanged). ``accurate``: dlib's ResNet and SFace fused into one vector.

The accurate rule, fixed before any LFW result was looked at: one vector per face,

    v = concat(a * e_dlib, b * e_sface),   a = sqrt(0.5 / s_dlib),   b = sqrt(0.5 / s_sface)

where ``e_x`` is each encoder's embedding as the pipeline makes it (the chip's and its mirror's
averaged: dlib's at its raw scale, SFace's two unit vectors) and ``s_x`` the standard deviation
of its squared distance ``d_x^2`` over the build-time pairs: every pair of the photos of ``../shared/data/faces`` and
``../shared/data/lfw-dev`` pooled (their main face through the pipeline's gate). Then
``|v1 - v2|^2 = 0.5 z_dlib + 0.5 z_sface + constant`` with ``z = (d^2 - mean) / s``: the sum of
standardised squared distances, weight 0.5 each, is what every store's exact search computes, so
no re-rank is needed. The scales and the threshold are constants here; ``benchmarks/accurate_profile.py
--fit`` reproduces them. Pure: arrays in, arrays out; the encoders are loaded by name on first use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = [
    "ACCURATE",
    "FAST",
    "PROFILES",
    "Part",
    "Profile",
    "encoder_choice",
    "get_profile",
    "profile_of_space",
]

#: Standard deviation of each encoder's squared distance over the build-time pairs: all 492,528
#: pairs of the 993 photos of faces/ (186) and lfw-dev (807) pooled, pairs across the two sets
#: included, each photo's main face through the pipeline (``benchmarks/accurate_profile.py --fit``);
#: and their means (the rule does not need them: they only shift it by a constant).
S_DLIB = 0.155864
S_SFACE = 0.188638
MEAN_DLIB = 0.688390
MEAN_SFACE = 1.769432
#: The weight of each encoder's z-score, fixed in advance (not fitted).
FUSION_WEIGHT = 0.5
#: Same person when |v1 - v2| <= this: the threshold of best balanced accuracy (0.99821) on the
#: 2,084 pairs of faces/pairs.csv and lfw-dev/pairs.csv together (``--fit``, as above).
ACCURATE_THRESHOLD = 2.19963


@dataclasses.dataclass(frozen=True)
class Part:
    """One encoder of a profile: its name (``dlib`` or ``sface``) and its scale in the fused vector."""

    encoder: str
    scale: float = 1.0

    def load(self):
        """The encoder's Keras model (built once per process)."""
        if self.encoder == "dlib":
            from facenet_keras.models.encoder import load_encoder

            return load_encoder()
        from facenet_keras.models.sface import load_sface

        return load_sface()

    def check_installed(self) -> None:
        """Raise ``MissingWeightsError`` (naming the pip command) when the package this encoder's
        weights are converted from is not installed; nothing is loaded or converted."""
        if self.encoder == "dlib":
            from facenet_keras.weights import dlib_resnet_dat_path

            dlib_resnet_dat_path()
        else:
            from facenet_keras.models.sface import sface_onnx_path

            sface_onnx_path()


@dataclasses.dataclass(frozen=True)
class Profile:
    """A named way to encode faces: one encoder (``fast``: the default pipeline, untouched) or
    several whose scaled embeddings are concatenated into one vector (``accurate``). Passed wherever
    an encoder (``model=``) is taken: the pipeline, the rulebook and every door accept it."""

    name: str
    parts: tuple[Part, ...]
    threshold: float | None = None

    @property
    def fused(self) -> bool:
        """Whether faces get the concatenation of several encoders' embeddings."""
        return len(self.parts) > 1

    @property
    def scales(self) -> tuple[float, ...]:
        return tuple(p.scale for p in self.parts)

    def fuse(self, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        """(N, sum of D_k) float32: each part's (N, D_k) embeddings times its scale, concatenated."""
        if len(embeddings) != len(self.parts):
            raise ValueError(f"profile {self.name} fuses {len(self.parts)} embeddings, got {len(embeddings)}")
        rows = {len(e) for e in embeddings}
        if len(rows) != 1:
            raise ValueError(f"the parts' embeddings must be of the same faces, got {sorted(rows)} rows")
        scaled = [np.asarray(e, np.float64) * p.scale for e, p in zip(embeddings, self.parts)]
        return np.concatenate(scaled, axis=1).astype(np.float32)

    @property
    def space_prefix(self) -> str:
        """How this profile's embedding space ids begin (the rest hashes its parts and scales)."""
        return f"profile-{self.name}:"

    def check_installed(self) -> None:
        """Refuse a profile whose weights are not all installed (``MissingWeightsError``, one line
        naming the pip command) before any of its encoders is loaded or converted."""
        for part in self.parts:
            part.check_installed()

    def unscaled(self) -> Profile:
        """The same encoders with every scale 1 (what ``--fit`` measures the scales on)."""
        return Profile(f"{self.name}-unscaled", tuple(Part(p.encoder, 1.0) for p in self.parts), None)

    def __str__(self) -> str:
        return self.name


def _scale(s: float) -> float:
    return float(np.sqrt(FUSION_WEIGHT / s))


FAST = Profile("fast", (Part("dlib"),))
ACCURATE = Profile(
    "accurate", (Part("dlib", _scale(S_DLIB)), Part("sface", _scale(S_SFACE))), threshold=ACCURATE_THRESHOLD
)
PROFILES = {p.name: p for p in (FAST, ACCURATE)}


def get_profile(name) -> Profile:
    """The profile called ``name`` (a Profile passes through); ValueError naming the choices."""
    if isinstance(name, Profile):
        return name
    profile = PROFILES.get(str(name).strip().lower())
    if profile is None:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    return profile


def profile_of_space(space_id: str | None) -> Profile | None:
    """The fused profile a gallery's recorded space names (so a gallery built with ``accurate``
    opens with it), else None. The prefix only: the full space is checked by the rulebook."""
    for profile in PROFILES.values():
        if profile.fused and space_id and space_id.startswith(profile.space_prefix):
            return profile
    return None


def encoder_choice(model=None, profile=None):
    """What a door encodes with: ``model`` (a path or a Keras model), or the named ``profile``; both
    at once is refused (a gallery is bound to one or the other)."""
    if profile is None:
        return model
    chosen = get_profile(profile)
    if model is not None and model != chosen:
        raise ValueError("give --model or --profile, not both: a profile chooses its own encoders")
    return chosen
