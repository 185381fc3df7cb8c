"""Photo -> faces -> aligned chips -> embeddings, batched over faces and photos.

Faces are found by MTCNN (:mod:`.detection`). Each is then cut into the chip the encoder was trained
on: by default dlib's own face chip, from dlib's 5-point landmarks (eye corners and the point under
the nose, :mod:`.landmarks`, a numpy port of dlib's predictor started from the MTCNN face) mapped
onto dlib's chip template. ``alignment="mtcnn"`` aligns MTCNN's five points onto their fitted
template instead (no second landmark stage; chips slightly further from dlib's). By default the
chip's mirror image is encoded too and the two embeddings averaged (test-time augmentation: a face
and its mirror are the same person, and averaging cancels part of the pose and lighting asymmetry).
"""

from __future__ import annotations

import functools
import hashlib
import os
import weakref
from pathlib import Path

import numpy as np

from facenet_keras.faces import alignment as _alignment
from facenet_keras.faces.detection import FaceDetector, shared_detector
from facenet_keras.faces.face import Face
from facenet_keras.files import sha256_file
from facenet_keras.images import load_image

# Photos per progress bar below which no bar is drawn.
_PROGRESS_MIN = 8
ALIGNMENTS = ("dlib", "mtcnn")
DEFAULT_ALIGNMENT = "dlib"


# ---------------------------------------------------------------------------- model resolution
def resolve_model(model=None):
    """The encoder to use: None -> the pretrained dlib ResNet; a path -> a saved ``.keras`` model
    (e.g. from ``facenet-keras train``); a Keras model -> itself. Loaded models are shared."""
    if model is None:
        from facenet_keras.models.encoder import load_encoder

        return load_encoder()
    if isinstance(model, (str, os.PathLike)):
        return _load_saved_model(str(Path(model).expanduser().resolve()))
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


def pipeline_id(model=None, flip: bool = True, alignment: str = DEFAULT_ALIGNMENT) -> str:
    """A short id of the encoder and every pipeline setting, for caches of embeddings (a gallery
    keys on :func:`embedding_space_id` instead, which ignores detector settings)."""
    if model is None:
        name = "dlib_resnet_v1"
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        name = f"{path.name}:{sha256_file(path)[:16]}"
    else:
        name = f"{model.name}:{model.count_params()}"
    return f"{name}|{alignment_id(alignment)}|flip={int(bool(flip))}"


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
    else:
        parts += [
            _alignment.MTCNN_TEMPLATE.tobytes(),
            _alignment.MTCNN_WEIGHTS.tobytes(),
            _alignment.DEFAULT_METHOD.encode(),
        ]
    return f"chip-{alignment}-{hashlib.sha256(b''.join(parts)).hexdigest()[:10]}"


def embedding_space_id(model=None, flip: bool = True, alignment: str = DEFAULT_ALIGNMENT) -> str:
    """The embedding space a face's embedding lives in: the encoder's weights digest, the chip
    alignment and the test-time augmentation (mirror averaging). Embeddings from two spaces must
    never be compared; a gallery records the space it was enrolled in."""
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

    if model is None:
        return PRETRAINED_THRESHOLD
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
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
    "models/layers.py",
    "models/dlib_resnet.py",
    "models/encoder.py",
    "weights/dlib_dat.py",
    "weights/dlib_shape_predictor.py",
)


def embedding_key(model=None, flip: bool = True, alignment: str = DEFAULT_ALIGNMENT) -> str:
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

    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
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


def _code_digest() -> str:
    package = Path(__file__).resolve().parents[1]  # read as files: finding them must not import keras
    h = hashlib.sha256()
    for name in _EMBEDDING_CODE:
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
    (0.25 for the pretrained encoder).
    """
    detections = list(detections)
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if not detections:
        return np.zeros((0, size, size, 3), np.uint8)
    if alignment == "mtcnn":
        return _alignment.align_faces(image, np.stack([d.landmarks for d in detections]), size=size, padding=padding)
    from facenet_keras.faces.landmarks import load_shape_predictor, rect_from_detection

    points = load_shape_predictor().predict(image, rect_from_detection(detections))
    target = _alignment.template_pixels(_alignment.DLIB_TEMPLATE, size, padding)
    return _alignment.warp_affine(image, _alignment.similarity_transform(points, target), size)


def chip_size(model=None) -> int:
    """The side of the square chip the encoder takes (150 for the dlib ResNet, 96 for NN4.small2)."""
    shape = resolve_model(model).input_shape
    return int(shape[1])


def encode_batch(
    images,
    *,
    model=None,
    detector: FaceDetector | None = None,
    flip: bool = True,
    alignment: str = DEFAULT_ALIGNMENT,
    batch_size: int = 32,
    progress: bool | None = None,
    return_images: bool = False,
):
    """Every face of every photo: a list (one per photo) of lists of :class:`Face`.

    ``images``: paths, bytes, PIL images or arrays (see :func:`facenet_keras.load_image`). Chips of
    all faces are encoded together in batches of ``batch_size``. With ``return_images`` the loaded
    RGB arrays come back too (a second list).
    """
    from tqdm.auto import tqdm

    images = list(images)
    model = resolve_model(model)
    detector = detector or shared_detector()
    size = chip_size(model)
    show = progress if progress is not None else len(images) >= _PROGRESS_MIN
    loaded, detections, chips = [], [], []
    for src in tqdm(images, desc="detecting faces", unit="photo", disable=not show):
        image = load_image(src)
        dets = detector.detect(image)
        loaded.append(image)
        detections.append(dets)
        if dets:
            chips.append(face_chips(image, dets, size, alignment))
    all_chips = np.concatenate(chips) if chips else np.zeros((0, size, size, 3), np.uint8)
    embeddings = embed_chips(all_chips, model=model, flip=flip, batch_size=batch_size)
    out, i = [], 0
    for dets in detections:
        out.append([d.with_embedding(embeddings[i + j]) for j, d in enumerate(dets)])
        i += len(dets)
    return (out, loaded) if return_images else out


def encode(
    image, *, model=None, detector: FaceDetector | None = None, flip: bool = True, alignment: str = DEFAULT_ALIGNMENT
) -> list[Face]:
    """Every face in one photo, each with box, landmarks, confidence and embedding (an empty list
    when there is none)."""
    return encode_batch([image], model=model, detector=detector, flip=flip, alignment=alignment, progress=False)[0]


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
