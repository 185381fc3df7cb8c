"""Photo -> faces -> aligned chips -> embeddings, batched over faces and photos.

Faces are found by MTCNN (:mod:`.detection`). Each is then cut into the chip the encoder was trained
on: by default dlib's own face chip, from dlib's 5-point landmarks (eye corners and the point under
the nose, :mod:`.landmarks`, a numpy port of dlib's predictor started from the MTCNN face) mapped
onto dlib's chip template. ``alignment="mtcnn"`` aligns MTCNN's five points onto their fitted
template instead (no second landmark stage; chips slightly further from dlib's); ``"arcface"``
aligns them onto the 112x112 ArcFace template, the chip of ArcFace-family encoders (an ONNX file
brought with ``model="x.onnx"`` takes it, and only it: see :func:`own_alignment`). By default the
chip's mirror image is encoded too and the two embeddings averaged (test-time augmentation: a face
and its mirror are the same person, and averaging cancels part of the pose and lighting asymmetry).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import weakref
from pathlib import Path

import numpy as np

from facenet_keras.faces import alignment as _alignment
from facenet_keras.faces.detection import FaceDetector, NoFaceError, shared_detector
from facenet_keras.faces.face import Face
from facenet_keras.files import sha256_file
from facenet_keras.images import load_image

# Photos per progress bar below which no bar is drawn.
_PROGRESS_MIN = 8
ALIGNMENTS = ("dlib", "mtcnn", "arcface")
DEFAULT_ALIGNMENT = "dlib"
_DEFAULT = object()  # "the default gate" (None means: no gate)


# ---------------------------------------------------------------------------- model resolution
def resolve_model(model=None):
    """The encoder to use: None -> the pretrained dlib ResNet; a path -> a saved ``.keras`` model
    (e.g. from ``facenet-keras train``), or an ArcFace-family ``.onnx`` file rebuilt in Keras; a
    Keras model -> itself. Loaded models are shared."""
    model = _plain(model)
    if model is None or _is_onnx(model):
        from facenet_keras.models.encoder import load_encoder

        return load_encoder(model) if model is not None else load_encoder()
    if _fused(model) is not None:
        raise TypeError(f"the {model} profile has several encoders: run it through pipeline_for(profile)")
    if isinstance(model, (str, os.PathLike)):
        return _load_saved_model(str(Path(model).expanduser().resolve()))
    return model


def _fused(model):
    """``model`` when it is a fused :class:`~facenet_keras.faces.profiles.Profile`, else None."""
    from facenet_keras.faces.profiles import Profile

    return model if isinstance(model, Profile) and model.fused else None


def _plain(model):
    """A one-encoder profile (``fast``) as the encoder reference it stands for (None: the default)."""
    from facenet_keras.faces.profiles import Profile

    if isinstance(model, Profile) and not model.fused:
        return None
    return model


@functools.cache
def _load_saved_model(path: str):
    if not Path(path).is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    import keras

    import facenet_keras.models.layers  # noqa: F401  (registers the custom layers a saved encoder may hold)
    from facenet_keras.models.metadata import read_metadata

    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    model.facenet_keras_threshold = read_metadata(path).get("threshold")  # see encoder_threshold
    return model


def _is_onnx(model) -> bool:
    return isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx"


def own_alignment(model=None, alignment: str | None = None) -> str:
    """The chip route for an encoder: ``alignment`` when given, else the encoder's own: "arcface"
    for an ArcFace-family encoder (an ``.onnx`` path, or a model with ``facenet_keras_alignment =
    "arcface"``), :data:`DEFAULT_ALIGNMENT` for the others. Checked without loading the encoder; a
    route the encoder was not trained on is refused, never cut."""
    arcface = _is_onnx(model) or getattr(model, "facenet_keras_alignment", None) == "arcface"
    if alignment is None:
        return "arcface" if arcface else DEFAULT_ALIGNMENT
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if arcface != (alignment == "arcface"):
        which = "an ArcFace-family encoder takes only" if arcface else "only an ArcFace-family encoder takes"
        raise ValueError(f"{which} the 112x112 ArcFace chips (alignment='arcface'), got alignment={alignment!r}")
    return alignment


def pipeline_id(model=None, flip: bool = True, alignment: str | None = None) -> str:
    """A short id of the encoder and every pipeline setting, for caches of embeddings (a gallery
    keys on :func:`embedding_space_id` instead, which ignores detector settings)."""
    model = _plain(model)
    if _fused(model) is not None:
        parts = "+".join(p.encoder for p in model.parts)
        return f"profile-{model.name}:{parts}|{alignment_id(own_alignment(None, alignment))}|flip=1"
    if model is None:
        name = "dlib_resnet_v1"
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        name = f"{path.name}:{sha256_file(path)[:16]}"
    else:
        name = f"{model.name}:{model.count_params()}"
    return f"{name}|{alignment_id(own_alignment(model, alignment))}|flip={int(bool(flip))}"


# ---------------------------------------------------------------------------- embedding space
# Digests of encoders this module loaded itself (None, or a path): their weights never change.
_owned_digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_digest(model) -> str:
    """sha256 of an encoder's weights: its name, layer types, and every weight array's shape, dtype
    and bytes, in order (the file it came from and its metadata do not count)."""
    import keras

    digest = hashlib.sha256(model.name.encode())
    digest.update(",".join(type(layer).__name__ for layer in model.layers).encode())
    for w in model.weights:
        arr = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def chip_alignment_id(alignment: str = DEFAULT_ALIGNMENT, padding: float = 0.25) -> str:
    """What decides the chip cut for a given face: the alignment route, its templates and version,
    the margin. Detector settings are not part of it (they decide which faces are found, not how a
    found face is cut)."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    parts = [str(_alignment.ALIGNMENT_VERSION).encode(), repr(float(padding)).encode()]
    if alignment == "dlib":
        from facenet_keras.faces.landmarks import RECT_COEFFS

        parts += [_alignment.DLIB_TEMPLATE.tobytes(), RECT_COEFFS.tobytes()]
    elif alignment == "arcface":
        parts += [_alignment.ARCFACE_TEMPLATE.tobytes(), str(_alignment.ARCFACE_SIZE).encode()]
    else:
        parts += [
            _alignment.MTCNN_TEMPLATE.tobytes(),
            _alignment.MTCNN_WEIGHTS.tobytes(),
            _alignment.DEFAULT_METHOD.encode(),
        ]
    return f"chip-{alignment}-{hashlib.sha256(b''.join(parts)).hexdigest()[:10]}"


def embedding_space_id(model=None, flip: bool = True, alignment: str | None = None) -> str:
    """The embedding space a face's embedding lives in: the encoder's weights digest, the chip
    alignment and the test-time augmentation (mirror averaging). Embeddings from two spaces must
    never be compared; a gallery records the space it was enrolled in. ``alignment``: the
    encoder's own when None (:func:`own_alignment`). A fused profile has its own space
    (:func:`profile_space_id`)."""
    model = _plain(model)
    if _fused(model) is not None:
        return profile_space_id(model)
    alignment = own_alignment(model, alignment)
    owned = model is None or isinstance(model, (str, os.PathLike))
    model = resolve_model(model)
    digest = _owned_digests.get(model) if owned else None
    if digest is None:
        digest = weights_digest(model)
        if owned:
            _owned_digests[model] = digest
    return f"{model.name}:{digest[:16]}|{chip_alignment_id(alignment)}|flip={int(bool(flip))}"


def encoder_threshold(model=None) -> float | None:
    """The distance threshold that belongs to an encoder: dlib's 0.6 for the pretrained ResNet, the
    one stored in a ``.keras`` file (by ``train`` or ``calibrate --save-model``), or None when the
    encoder carries none (it must be calibrated before it decides anything)."""
    from facenet_keras.models.metadata import PRETRAINED_THRESHOLD, read_metadata

    model = _plain(model)
    if _fused(model) is not None:
        return model.threshold
    if model is None:
        return PRETRAINED_THRESHOLD
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        if _is_onnx(path):  # a file you bring ships no threshold for this pipeline: never guessed
            return None
        value = read_metadata(path).get("threshold")
    else:
        value = getattr(model, "facenet_keras_threshold", None)
        if value is None and _is_pretrained(model):
            return PRETRAINED_THRESHOLD
    if value is None:
        return None
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"the encoder's stored threshold {value!r} is not a positive number")
    return value


def _is_pretrained(model) -> bool:
    """Whether a model object is (a copy of) the pretrained dlib ResNet at its raw scale."""
    from facenet_keras.models.encoder import load_encoder

    pretrained = load_encoder()
    if model is pretrained:
        return True
    if model.name != pretrained.name or model.count_params() != pretrained.count_params():
        return False
    embedding_space_id(None)  # records the shared pretrained model's digest
    return weights_digest(model) == _owned_digests[pretrained]


def alignment_id(alignment: str = DEFAULT_ALIGNMENT) -> str:
    """Changes whenever detection, the alignment route or its constants do (so caches never serve
    stale chips): the detector's landmark version and settings, and the route's templates."""
    from facenet_keras.faces import detection

    settings = (
        detection.DETECTOR_VERSION,
        detection.DEFAULT_MIN_FACE_SIZE,
        detection.DEFAULT_MIN_CONFIDENCE,
        detection.DEFAULT_MAX_SIDE,
    )
    parts = [str(_alignment.ALIGNMENT_VERSION).encode(), repr(settings).encode()]
    if alignment == "dlib":
        from facenet_keras.faces.landmarks import RECT_COEFFS

        parts += [_alignment.DLIB_TEMPLATE.tobytes(), RECT_COEFFS.tobytes()]
    elif alignment == "arcface":
        parts += [_alignment.ARCFACE_TEMPLATE.tobytes(), str(_alignment.ARCFACE_SIZE).encode()]
    else:
        parts += [
            _alignment.MTCNN_TEMPLATE.tobytes(),
            _alignment.MTCNN_WEIGHTS.tobytes(),
            _alignment.DEFAULT_METHOD.encode(),
        ]
    digest = hashlib.sha256(b"".join(parts)).hexdigest()[:10]
    return f"align-{alignment}-{digest}"


# Modules whose code computes an embedding from a photo: their source is part of
# :func:`embedding_key`, so an edit to any of them (a new main-face rule, a changed template, a
# dropped mirror average) never meets embeddings cached by the old code, even without a version bump.
_EMBEDDING_CODE = (
    "images.py",
    "faces/detection.py",
    "faces/landmarks.py",
    "faces/alignment.py",
    "faces/face.py",
    "faces/pipeline.py",
    "faces/quality.py",
    "models/layers.py",
    "models/dlib_resnet.py",
    "models/encoder.py",
    "models/onnx_encoder.py",
    "models/folding.py",
    "weights/dlib_dat.py",
    "weights/onnx_initializers.py",
    "weights/dlib_shape_predictor.py",
)


# What else computes a fused profile's embedding (its own cache key only: the fast one is unchanged).
_PROFILE_CODE = ("faces/profiles.py", "models/sface.py", "weights/onnx_initializers.py", "weights/array_cache.py")


def embedding_key(model=None, flip: bool = True, alignment: str | None = None) -> str:
    """The key of everything that can change an embedding, for caches of embeddings.

    ``facenet-keras-<version>|<encoder>@<weights digest>|<alignment id>|flip=<0/1>|code-<digest>``:
    the package version, which encoder and the sha256 of its weights (the installed ``.dat`` for
    the pretrained one, the file for a saved ``.keras``, the weight arrays for
    a model object), the detector and alignment settings and templates (:func:`alignment_id`),
    mirrored-chip averaging, and the source of the modules that compute embeddings. Unlike
    :func:`pipeline_id` (a gallery's bookkeeping) it never stays the same across an upgrade or an
    edit of that code. Cheap: hashes files, never builds the pretrained model.
    """
    from facenet_keras import __version__

    model = _plain(model)
    if _fused(model) is not None:
        return f"facenet-keras-{__version__}|{_profile_cache_key(model)}|flip=1|code-{_code_digest(_PROFILE_CODE)}"
    alignment = own_alignment(model, alignment)
    return (
        f"facenet-keras-{__version__}|{_encoder_digest(model)}|{alignment_id(alignment)}"
        f"|flip={int(bool(flip))}|code-{_code_digest()}"
    )


def _encoder_digest(model) -> str:
    if model is None:
        from facenet_keras.weights import dlib_resnet_dat_path

        # the conversion (and its cache tag) lives in models/dlib_resnet.py, covered by the code digest
        return f"dlib_resnet_v1@{_file_digest(str(dlib_resnet_dat_path()))[:16]}"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        return f"{path.name}@{_file_digest(str(path))[:16]}"
    h = hashlib.sha256(model.name.encode())
    for w in model.weights:
        array = np.ascontiguousarray(np.asarray(w))
        h.update(f"{w.path}{array.shape}{array.dtype}".encode())
        h.update(array.tobytes())
    return f"{model.name}@{h.hexdigest()[:16]}"


def _file_digest(path: str) -> str:
    stat = os.stat(path)
    return _file_digest_cached(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _file_digest_cached(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def _code_digest(extra: tuple[str, ...] = ()) -> str:
    package = Path(__file__).resolve().parents[1]  # read as files: finding them must not import keras
    h = hashlib.sha256()
    for name in _EMBEDDING_CODE + extra:
        path = package / name
        if not path.is_file():
            raise RuntimeError(f"cannot find {path} (source of the embedding code) to key the embedding cache")
        h.update(name.encode())
        h.update(bytes.fromhex(_file_digest(str(path))))
    return h.hexdigest()[:12]


# ---------------------------------------------------------------------------- detection + encoding
def embed_chips(chips: np.ndarray, model=None, flip: bool = True, batch_size: int = 32) -> np.ndarray:
    """Embeddings (N, D) float32 of aligned chips (N, S, S, 3) uint8; with ``flip`` the mirrored
    chip's embedding is averaged in."""
    from facenet_keras.models.encoder import encode_chips

    model = resolve_model(model)
    chips = np.asarray(chips)
    if len(chips) == 0:
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    if not flip:
        return encode_chips(chips, model=model, batch_size=batch_size)
    both = encode_chips(np.concatenate([chips, chips[:, :, ::-1]]), model=model, batch_size=batch_size)
    return (both[: len(chips)] + both[len(chips) :]) / 2.0


def face_chips(
    image: np.ndarray, detections, size: int = 150, alignment: str = DEFAULT_ALIGNMENT, padding: float = 0.25
) -> np.ndarray:
    """Aligned chips (N, size, size, 3) uint8 of the detected faces of one RGB photo.

    "dlib": dlib's 5 points predicted from each MTCNN face, mapped onto dlib's chip template, exactly
    as ``dlib.get_face_chip(..., padding=0.25)`` would cut it. "mtcnn": MTCNN's 5 points onto their
    fitted template. ``padding``: the margin around the face, as a fraction of its template width
    (0.25 for the pretrained encoder). "arcface": MTCNN's 5 points onto the ArcFace template, 112x112
    only (its template has its own margin; ``padding`` does not apply).
    """
    detections = list(detections)
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if alignment == "arcface" and size != _alignment.ARCFACE_SIZE:
        raise ValueError(f"ArcFace chips are {_alignment.ARCFACE_SIZE}x{_alignment.ARCFACE_SIZE}, not {size}x{size}")
    if not detections:
        return np.zeros((0, size, size, 3), np.uint8)
    if alignment == "arcface":
        return _alignment.arcface_chips(image, np.stack([d.landmarks for d in detections]))
    if alignment == "mtcnn":
        return _alignment.align_faces(image, np.stack([d.landmarks for d in detections]), size=size, padding=padding)
    from facenet_keras.faces.landmarks import load_shape_predictor, rect_from_detection

    points = load_shape_predictor().predict(image, rect_from_detection(detections))
    target = _alignment.template_pixels(_alignment.DLIB_TEMPLATE, size, padding)
    return _alignment.warp_affine(image, _alignment.similarity_transform(points, target), size)


def chip_size(model=None) -> int:
    """The side of the square chip the encoder takes (150 for the dlib ResNet, 96 for NN4.small2)."""
    if _fused(model) is not None:
        raise TypeError(f"the {model} profile cuts one chip per encoder: {[p.encoder for p in model.parts]}")
    shape = resolve_model(model).input_shape
    return int(shape[1])


class UnusableFaceError(NoFaceError):
    """A photo's main face was found but the quality gate turned it away (too small, not a face?,
    low quality): nothing is decided on it. A :class:`NoFaceError`, so every door that reports "no
    face" reports this too, with the reason."""

    def __init__(self, message: str, face: Face):
        super().__init__(message)
        self.face = face
        self.reason = face.gated


class FacePipeline:
    """The one owner of photo -> faces -> quality -> chips -> embeddings -> main face.

    Every door (``fk.encode``, the decisions in :mod:`facenet_keras.identity.recognition`, the
    service's batching queue, ``watch`` and liveness, the photo library, the course functions)
    runs photos through one of these, so a face is found, judged, cut and encoded the same way
    everywhere. ``model``: None (the pretrained encoder), a saved ``.keras`` path or a Keras model;
    chips are cut at that encoder's own input size. ``gate``: the
    :class:`~facenet_keras.faces.quality.QualityGate` (None: judge and report, but let every face
    through, as ``--force`` does). Faces the gate turns away keep their reason and get no
    embedding, so no decision can name them. ``embedder``: chips -> embeddings, to put a shared
    batching queue in front of the encoder (default: :func:`embed_chips`, mirror averaged with ``flip``).
    """

    def __init__(
        self,
        model=None,
        *,
        detector: FaceDetector | None = None,
        flip: bool = True,
        alignment: str | None = None,
        gate=_DEFAULT,
        batch_size: int = 32,
        embedder=None,
    ):
        from facenet_keras.faces import quality

        model = _plain(model)
        if _fused(model) is not None and type(self) is FacePipeline:
            raise TypeError(f"the {model} profile runs in a ProfilePipeline: use pipeline_for(profile)")
        alignment = own_alignment(model, alignment)
        self.model_ref = model
        self._model = None if model is None or isinstance(model, (str, os.PathLike)) else model
        self._detector = detector
        self.flip, self.alignment, self.batch_size = bool(flip), alignment, int(batch_size)
        self.gate = quality.DEFAULT_GATE if gate is _DEFAULT else gate
        self._embedder = embedder
        self._space: str | None = None

    @property
    def model(self):
        """The Keras encoder, built (or loaded) on first use: detecting and judging faces needs none."""
        if self._model is None:
            self._model = resolve_model(self.model_ref)
        return self._model

    @property
    def chip_size(self) -> int:
        """The side of the encoder's own input chip."""
        return chip_size(self.model)

    @property
    def detector(self) -> FaceDetector:
        """The detector given, else the shared default one (asked each time, so it follows the
        detection module's settings)."""
        return self._detector if self._detector is not None else shared_detector()

    # ------------------------------------------------------------------ what it is
    @property
    def space_id(self) -> str:
        """The embedding space of this pipeline's embeddings (what a gallery is bound to)."""
        if self._space is None:
            self._space = embedding_space_id(self._ref(), self.flip, self.alignment)
        return self._space

    @property
    def threshold(self) -> float | None:
        """The distance threshold that belongs to this encoder (None: it must be calibrated)."""
        return encoder_threshold(self._ref())

    def _ref(self):
        """The encoder as the module-level helpers take it: None / a path (shared, digest cached) or the model."""
        owned = self.model_ref is None or isinstance(self.model_ref, (str, os.PathLike))
        return self.model_ref if owned else self.model

    @property
    def dimension(self) -> int:
        return int(self.model.output_shape[-1])

    def with_gate(self, gate) -> FacePipeline:
        """The same pipeline (encoder, detector, batching) with another gate (None: let all through)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.gate = gate
        return other

    # ------------------------------------------------------------------ the steps
    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face of one RGB photo, each judged by the quality gate (``face.gated``), no embedding."""
        from facenet_keras.faces import quality

        detector = self.detector
        faces = detector.detect(image)
        if not faces:
            return []
        seen_at = getattr(detector, "max_side", quality.DEFAULT_MAX_SIDE)  # the size the detector saw the photo at
        gate = self.gate if self.gate is not None else quality.DEFAULT_GATE
        judged = quality.assess(image, faces, gate, detector_max_side=seen_at)
        if self.gate is None:  # judged and reported, but nothing is turned away
            judged = [dataclasses.replace(q, reason=None) for q in judged]
        return [f.with_quality(q) for f, q in zip(faces, judged)]

    def chips(self, image: np.ndarray, faces) -> np.ndarray:
        """The encoder's own chips (N, S, S, 3) uint8 of ``faces`` of ``image``: its input size, its alignment."""
        return face_chips(image, faces, self.chip_size, self.alignment)

    def join_chips(self, chips: list) -> np.ndarray:
        """Chips of several photos (a list of :meth:`chips` results) as one batch."""
        return np.concatenate(chips)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Embeddings (N, D) of chips, through the shared queue when there is one."""
        chips = np.asarray(chips)
        if len(chips) == 0:
            return np.zeros((0, self.dimension), np.float32)
        if self._embedder is not None:
            return np.asarray(self._embedder(chips))
        return embed_chips(chips, model=self.model, flip=self.flip, batch_size=self.batch_size)

    def encode_images(self, images: list[np.ndarray], faces_per_image=None, *, embed=None) -> list[list[Face]]:
        """Every face of every loaded photo, judged, the usable ones with their embedding; all chips
        in shared batches. ``faces_per_image``: faces already detected by :meth:`detect`; ``embed``:
        chips -> embeddings for this call (e.g. a batch queue's submit), default :meth:`embed`."""
        if faces_per_image is None:
            faces_per_image = [self.detect(image) for image in images]
        chips, where = [], []
        for k, (image, faces) in enumerate(zip(images, faces_per_image)):
            keep = [i for i, f in enumerate(faces) if f.gated is None]
            if keep:
                chips.append(self.chips(image, [faces[i] for i in keep]))
                where += [(k, i) for i in keep]
        out = [list(faces) for faces in faces_per_image]
        if chips:
            embeddings = (embed or self.embed)(self.join_chips(chips))
            for (k, i), e in zip(where, embeddings):
                out[k][i] = out[k][i].with_embedding(e)
        return out

    def encode_batch(self, images, *, progress: bool | None = None, return_images: bool = False):
        """Every face of every photo (paths, bytes, PIL images or arrays): a list of lists of
        :class:`Face`; with ``return_images`` the loaded RGB arrays too."""
        from tqdm.auto import tqdm

        images = list(images)
        show = progress if progress is not None else len(images) >= _PROGRESS_MIN
        loaded, detections = [], []
        for src in tqdm(images, desc="detecting faces", unit="photo", disable=not show):
            image = load_image(src)
            loaded.append(image)
            detections.append(self.detect(image))
        out = self.encode_images(loaded, detections)
        return (out, loaded) if return_images else out

    def encode(self, image) -> list[Face]:
        """Every face in one photo (see :meth:`encode_batch`)."""
        return self.encode_batch([image], progress=False)[0]

    # ------------------------------------------------------------------ the main face
    def main_face(self, faces, image_shape, source) -> Face:
        """:func:`main_face`: the face a photo is about, refused when none is usable."""
        return main_face(faces, image_shape, source)

    def encode_main(self, image) -> tuple[Face, int, np.ndarray]:
        """(main face with its embedding, how many faces the photo has, the loaded photo)."""
        (faces,), (loaded,) = self.encode_batch([image], progress=False, return_images=True)
        return self.main_face(faces, loaded.shape, image), len(faces), loaded


def main_face(faces, image_shape, source) -> Face:
    """The face a photo is about (:func:`primary_face`), refused when there is none
    (:class:`NoFaceError`) or when the gate turned it away (:class:`UnusableFaceError`, with the
    reason): a decision is never made on a face that is not usable. ``source``: the photo (or its
    name) for the message."""
    face = primary_face(faces, image_shape)
    where = describe_source(source)
    if face is None:
        raise NoFaceError(f"no face found in {where}")
    if face.gated is not None:
        raise UnusableFaceError(f"{where}: the face found is not usable ({unusable_because(face)})", face)
    return face


def unusable_because(face: Face) -> str:
    """The gate's reason for ``face`` in words a user can act on, e.g. "too small: its eyes are 9 px apart"."""
    q = face.quality
    if q is None or q.reason is None:
        return "usable"
    detail = {
        "too small": f"its eyes are {q.eye_distance:.0f} px apart",
        "not a face?": f"detector score {q.score:.2f}, landmark layout {q.geometry:.2f}",
        "low quality": f"sharpness {q.sharpness:.2f}, yaw {q.yaw:.2f}",
    }.get(q.reason)
    return f"{q.reason}: {detail}" if detail else q.reason


@functools.lru_cache(maxsize=8)
def _shared_pipeline(model, flip: bool, alignment: str | None, batch_size: int) -> FacePipeline:
    return FacePipeline(model, flip=flip, alignment=alignment, batch_size=batch_size)


def pipeline_for(
    model=None,
    *,
    detector: FaceDetector | None = None,
    flip: bool = True,
    alignment: str | None = None,
    batch_size: int = 32,
) -> FacePipeline:
    """The pipeline of an encoder (None, a path or a model); shared (built once) with the default
    detector, a new one around a given ``detector``; a FacePipeline passed as ``model`` is itself
    (its own settings stand)."""
    if isinstance(model, FacePipeline):
        return model
    model = _plain(model)
    if _fused(model) is not None:
        if detector is not None:
            return ProfilePipeline(model, detector=detector, flip=flip, batch_size=batch_size)
        return _shared_profile_pipeline(model, bool(flip), int(batch_size))
    if detector is not None:
        return FacePipeline(model, detector=detector, flip=flip, alignment=alignment, batch_size=batch_size)
    key = str(Path(model).expanduser().resolve()) if isinstance(model, (str, os.PathLike)) else model
    return _shared_pipeline(key, bool(flip), alignment, int(batch_size))


class ProfilePipeline(FacePipeline):
    """A :class:`FacePipeline` running a fused profile: one detection and one quality gate per photo,
    then each encoder's own chip of each usable face (dlib's 150 px chip from dlib's 5 points, the
    112 px ArcFace chip from MTCNN's 5 points), each encoder's embedding mirror averaged as usual,
    and the profile's scaled concatenation as the face's one embedding. Chips here are a tuple, one
    array per encoder; ``embedder`` (a shared queue) takes that tuple too."""

    def __init__(self, profile, *, detector=None, flip=True, gate=_DEFAULT, batch_size=32, embedder=None):
        if not flip:  # its space, scales and threshold are those of mirror-averaged embeddings
            raise ValueError(f"the {profile} profile always averages each chip with its mirror (flip=True)")
        profile.check_installed()  # a missing wheel: one line now, not after the other encoder's conversion
        super().__init__(None, detector=detector, flip=flip, gate=gate, batch_size=batch_size, embedder=embedder)
        self.profile = profile
        self.model_ref = profile
        self._models: tuple | None = None

    @property
    def models(self) -> tuple:
        """Each part's Keras encoder, built on first use."""
        if self._models is None:
            self._models = tuple(p.load() for p in self.profile.parts)
        return self._models

    @property
    def model(self):
        raise TypeError(f"the {self.profile} profile has one encoder per part: see .models")

    @property
    def chip_size(self) -> int:
        raise TypeError(f"the {self.profile} profile cuts one chip per encoder: see .chip_sizes")

    @property
    def chip_sizes(self) -> tuple[int, ...]:
        """The side of each encoder's own chip."""
        return tuple(chip_size(m) for m in self.models)

    @property
    def space_id(self) -> str:
        if self._space is None:
            self._space = profile_space_id(self.profile)
        return self._space

    @property
    def threshold(self) -> float | None:
        return self.profile.threshold

    def _ref(self):
        return self.profile

    @property
    def dimension(self) -> int:
        return sum(int(m.output_shape[-1]) for m in self.models)

    def chips(self, image: np.ndarray, faces) -> tuple:
        """Each encoder's own chips of ``faces`` of ``image``: a tuple, one (N, S_k, S_k, 3) array per encoder."""
        faces = list(faces)
        return tuple(part_chips(p.encoder, image, faces) for p in self.profile.parts)

    def join_chips(self, chips: list) -> tuple:
        return tuple(np.concatenate(per_part) for per_part in zip(*chips))

    def embed(self, chips) -> np.ndarray:
        """The fused embeddings (N, D) of a tuple of per-encoder chips, through the shared queue when there is one."""
        if len(chips[0]) == 0:
            return np.zeros((0, self.dimension), np.float32)
        if self._embedder is not None:
            return np.asarray(self._embedder(chips))
        return self.embed_parts(chips)

    def embed_parts(self, chips) -> np.ndarray:
        """Each encoder on its own chips (mirror averaged with ``flip``), fused by the profile."""
        parts = [
            embed_chips(c, model=m, flip=self.flip, batch_size=self.batch_size) for c, m in zip(chips, self.models)
        ]
        return self.profile.fuse(parts)


def part_chips(encoder: str, image: np.ndarray, faces) -> np.ndarray:
    """A profile part's own chips of ``faces`` of ``image``: ``dlib``, dlib's 150 px chip from dlib's 5
    points; ``sface``, the 112 px ArcFace chip from MTCNN's 5 points."""
    if encoder == "dlib":
        return face_chips(image, faces, 150, "dlib")
    return face_chips(image, faces, _alignment.ARCFACE_SIZE, "arcface")


def _arcface_chip_id() -> str:
    parts = _alignment.ARCFACE_TEMPLATE.tobytes() + str(_alignment.ALIGNMENT_VERSION).encode()
    return f"chip-arcface-{hashlib.sha256(parts).hexdigest()[:10]}"


def _part_space(encoder: str) -> str:
    """The embedding space of one profile part alone (mirror averaged)."""
    if encoder == "dlib":
        return embedding_space_id(None)
    from facenet_keras.models.sface import WEIGHTS_DIGEST

    return f"sface:{WEIGHTS_DIGEST[:16]}|{_arcface_chip_id()}|flip=1"


def profile_space_id(profile) -> str:
    """A profile's embedding space: one encoder's own (``fast``: today's), or for a fused profile a
    hash of every part's space and scale."""
    if not profile.fused:
        return embedding_space_id(None)
    h = hashlib.sha256()
    for p in profile.parts:
        h.update(f"{_part_space(p.encoder)}*{p.scale!r};".encode())
    return f"{profile.space_prefix}{h.hexdigest()[:16]}|{'+'.join(p.encoder for p in profile.parts)}|flip=1"


def _profile_cache_key(profile) -> str:
    """Everything that changes a fused profile's embedding besides the code: each part's weights file,
    detector and chip settings, and its scale."""
    keys = []
    for p in profile.parts:
        if p.encoder == "dlib":
            key = f"{_encoder_digest(None)}|{alignment_id('dlib')}"
        else:
            from facenet_keras.models.sface import sface_onnx_path

            key = f"sface@{_file_digest(str(sface_onnx_path()))[:16]}|{alignment_id('mtcnn')}|{_arcface_chip_id()}"
        keys.append(f"{key}*{p.scale!r}")
    return f"profile-{profile.name}[{';'.join(keys)}]"


@functools.lru_cache(maxsize=4)
def _shared_profile_pipeline(profile, flip: bool, batch_size: int) -> ProfilePipeline:
    return ProfilePipeline(profile, flip=flip, batch_size=batch_size)


def encode_batch(
    images,
    *,
    model=None,
    detector: FaceDetector | None = None,
    flip: bool = True,
    alignment: str | None = None,
    batch_size: int = 32,
    progress: bool | None = None,
    return_images: bool = False,
    profile=None,
):
    """Every face of every photo: a list (one per photo) of lists of :class:`Face`, through the
    encoder's (or the ``profile``'s: 'fast', 'accurate') :class:`FacePipeline` (judged by the
    quality gate: a face it turns away carries its reason in ``face.gated`` and no embedding).

    ``images``: paths, bytes, PIL images or arrays (see :func:`facenet_keras.load_image`). Chips of
    all faces are encoded together in batches of ``batch_size``. With ``return_images`` the loaded
    RGB arrays come back too (a second list).
    """
    from facenet_keras.faces.profiles import encoder_choice

    model = encoder_choice(model, profile)
    pipe = pipeline_for(model, detector=detector, flip=flip, alignment=alignment, batch_size=batch_size)
    return pipe.encode_batch(images, progress=progress, return_images=return_images)


def encode(
    image,
    *,
    model=None,
    detector: FaceDetector | None = None,
    flip: bool = True,
    alignment: str | None = None,
    profile=None,
) -> list[Face]:
    """Every face in one photo, each with box, landmarks, confidence, quality and (when usable)
    embedding (an empty list when there is none); ``profile`` ('fast', 'accurate') instead of ``model``."""
    return encode_batch(
        [image], model=model, detector=detector, flip=flip, alignment=alignment, progress=False, profile=profile
    )[0]


def align_faces(image, faces=None, *, model=None) -> np.ndarray:
    """The chips the pipeline feeds the encoder, (N, S, S, 3) uint8: the faces of ``image`` (every
    face found when ``faces`` is None) cut at the encoder's own size and alignment, so
    ``encode_chips(align_faces(photo))`` lands in the same embedding space as a gallery (up to the
    mirror averaging the pipeline adds). A fused profile gives a tuple, one array per encoder."""
    pipe = pipeline_for(model)
    image = load_image(image)
    if isinstance(faces, np.ndarray):
        raise TypeError(
            "align_faces takes the photo's faces (from fk.detect_faces or fk.encode), not landmark arrays; "
            "facenet_keras.faces.alignment.align_faces aligns raw MTCNN points onto their own template"
        )
    faces = pipe.detect(image) if faces is None else list(faces)
    return pipe.chips(image, faces)


def describe_source(src) -> str:
    """How to name an image source in a message: its path, else its type."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return f"the given {type(src).__name__}"


def primary_face(faces, image_shape) -> Face | None:
    """The face a photo is about: among faces at least a third the area of the largest, the one
    whose landmarks' centre is nearest the photo's centre (LFW and ID photos centre their subject;
    small background faces never win). The landmarks, not the box, locate the face: a box can
    stretch over a neighbour's hair while the eyes, nose and mouth cannot. None when there is no face."""
    faces = list(faces)
    if not faces:
        return None
    height, width = image_shape[:2]
    largest = max(f.area for f in faces)
    candidates = [f for f in faces if f.area >= largest / 3.0]

    def off_centre(f: Face) -> float:
        cx, cy = np.asarray(f.landmarks, np.float64).mean(axis=0)
        return float(np.hypot((cx - width / 2.0) / width, (cy - height / 2.0) / height))

    return min(candidates, key=off_centre)
