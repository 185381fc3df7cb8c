"""The faces the held-out clustering benchmark clusters: per photo of ROOT/<person>/, its main face's
dlib embedding (the pipeline's, mirror averaged), its SFace embedding (the 112 px ArcFace chip from
the same MTCNN points, mirror averaged, unit length) and the quality gate's verdict on it.

The pipeline runs with the gate open (``with_gate(None)``) so gated faces get an embedding too and
the gate's effect can be measured; the verdict is the default gate's (``DEFAULT_GATE.rejudge``).
Cached per photo (sha256 of its bytes) under a key of everything that changes the record.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIM = 128
_CODE = (
    "faces/alignment.py",
    "faces/quality.py",
    "models/sface.py",
    "models/layers.py",
    "weights/onnx_initializers.py",
)


@dataclass(frozen=True)
class FaceSet:
    """One data set's main faces: rows where a face was found (photos without one are left out)."""

    name: str
    people: np.ndarray  # (N,) identity (folder name)
    dlib: np.ndarray  # (N, 128) the fast profile's embeddings
    sface: np.ndarray  # (N, 128) SFace, unit vectors
    gated: np.ndarray  # (N,) bool: the default gate turns the face away
    no_face: int  # photos in which no face was found

    def take(self, rows) -> FaceSet:
        rows = np.asarray(rows)
        return FaceSet(self.name, self.people[rows], self.dlib[rows], self.sface[rows], self.gated[rows], 0)


def _namespace() -> str:
    from facenet_keras.faces.pipeline import embedding_key
    from facenet_keras.faces.quality import DEFAULT_GATE, QUALITY_VERSION
    from facenet_keras.models.sface import WEIGHTS_DIGEST

    h = hashlib.sha256(inspect.getsource(_record).encode())
    for rel in _CODE:
        h.update((REPO / "facenet_keras" / rel).read_bytes())
    gate = f"q{QUALITY_VERSION}|{DEFAULT_GATE}"
    return f"cluster-faces|{embedding_key()}|sface-{WEIGHTS_DIGEST[:16]}|{gate}|{h.hexdigest()[:16]}"


def _record(pipe, sface_model, path: str) -> np.ndarray | None:
    """[dlib (128), SFace (128), gated (1)] of the photo's main face, or None without a face."""
    from facenet_keras import load_image
    from facenet_keras.faces.alignment import arcface_chips
    from facenet_keras.faces.pipeline import primary_face
    from facenet_keras.faces.quality import DEFAULT_GATE

    image = load_image(path)
    face = primary_face(pipe.detect(image), image.shape)
    if face is None:
        return None
    dlib = pipe.embed(pipe.chips(image, [face]))[0]
    chip = arcface_chips(image, np.asarray(face.landmarks, np.float64))
    both = np.asarray(sface_model(np.concatenate([chip, chip[:, :, ::-1]]).astype(np.float32), training=False))
    sface = both[0] / np.linalg.norm(both[0]) + both[1] / np.linalg.norm(both[1])
    gated = DEFAULT_GATE.rejudge(face.quality).reason is not None
    return np.concatenate([dlib, sface / np.linalg.norm(sface), [float(gated)]]).astype(np.float32)


def load_faces(name: str, root: Path, use_cache: bool = True) -> FaceSet:
    """Every photo of ROOT/<person>/ through the pipeline (cached)."""
    from facenet_keras.evaluation.embedding_cache import EmbeddingCache, file_digest
    from facenet_keras.faces.pipeline import pipeline_for
    from facenet_keras.images import list_identities
    from facenet_keras.models.sface import load_sface

    cache = EmbeddingCache(_namespace())
    pipe = sface_model = None
    people, rows, no_face, computed, t0 = [], [], 0, 0, time.perf_counter()
    for person, photos in list_identities(root).items():
        for photo in photos:
            digest = file_digest(photo)
            if use_cache and digest in cache:
                value = cache.get(digest=digest)
            else:
                if pipe is None:
                    pipe, sface_model = pipeline_for(None).with_gate(None), load_sface()
                value = _record(pipe, sface_model, str(photo))
                cache.put(value, digest=digest)
                computed += 1
                if computed % 50 == 0:
                    print(f"  {name}: {computed} photos encoded ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            if value is None:
                no_face += 1
                continue
            people.append(person)
            rows.append(np.asarray(value, np.float32))
    x = np.stack(rows)
    return FaceSet(name, np.array(people), x[:, :DIM], x[:, DIM : 2 * DIM], x[:, -1] > 0.5, no_face)
