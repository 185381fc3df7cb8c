"""The pipeline's defaults (dlib's 5 points and chip, mirrored-chip averaging, the detector's
settings) are pinned together with the pipeline id, and the embedding cache's key changes with
everything that can change an embedding."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from facenet_keras.faces import alignment, detection, pipeline

# What a photo goes through when nobody passes an option. Change a default only together with the
# pipeline id (bump detection.DETECTOR_VERSION or alignment.ALIGNMENT_VERSION, or change the
# templates), then update both pins.
PINNED_DEFAULTS = {
    "alignment": "dlib",  # dlib's 5-point landmarks onto dlib's chip template
    "flip": True,  # the mirrored chip's embedding averaged in
    "padding": 0.25,  # dlib.get_face_chip's padding, as the encoder was trained
    "min_face_size": 20.0,
    "min_confidence": 0.8,  # MTCNN's own final-stage threshold
    "max_side": 1024,
    "scale_factor": 0.709,
    "detector_version": 2,
    "alignment_version": 2,
}
PINNED_ID = "dlib_resnet_v1|align-dlib-ceaa64b822|flip=1"


def _default(func, name):
    return inspect.signature(func).parameters[name].default


def current_defaults() -> dict:
    """The defaults as every entry point sees them (signatures and the shared detector)."""
    from facenet_keras.evaluation.protocols import primary_embeddings  # noqa: F401  (calls encode_batch's defaults)

    entry = {
        f: (_default(f, "flip"), _default(f, "alignment"))
        for f in (pipeline.encode, pipeline.encode_batch, pipeline.pipeline_id, pipeline.embedding_key)
    }
    assert len(set(entry.values())) == 1, f"entry points disagree on flip/alignment defaults: {entry}"
    flip, align = entry[pipeline.encode]
    align = pipeline.own_alignment(None, align)  # None: the encoder's own (dlib's chip for the default one)
    assert _default(pipeline.face_chips, "alignment") == align
    det = detection.shared_detector()
    return {
        "alignment": align,
        "flip": flip,
        "padding": _default(pipeline.face_chips, "padding"),
        "min_face_size": det.min_face_size,
        "min_confidence": det.min_confidence,
        "max_side": det.max_side,
        "scale_factor": round(det.scale_factor, 6),
        "detector_version": detection.DETECTOR_VERSION,
        "alignment_version": alignment.ALIGNMENT_VERSION,
    }


def test_defaults_are_pinned_with_the_pipeline_id():
    now, pid = current_defaults(), pipeline.pipeline_id()
    changed = {k: (PINNED_DEFAULTS[k], v) for k, v in now.items() if PINNED_DEFAULTS.get(k) != v}
    if changed and pid == PINNED_ID:
        pytest.fail(
            f"pipeline defaults changed {changed} but the pipeline id did not: galleries and caches "
            "would mix embeddings of two pipelines (bump DETECTOR_VERSION / ALIGNMENT_VERSION)"
        )
    assert not changed and pid == PINNED_ID, (
        f"the pipeline changed (defaults {changed}, id {pid!r}): if that is intended, update PINNED_DEFAULTS "
        "and PINNED_ID together"
    )


@pytest.mark.parametrize(
    "module, name, value",
    [
        (detection, "DEFAULT_MIN_CONFIDENCE", 0.9),
        (detection, "DEFAULT_MIN_FACE_SIZE", 40),
        (detection, "DEFAULT_MAX_SIDE", 2048),
        (detection, "DETECTOR_VERSION", 3),
        (alignment, "ALIGNMENT_VERSION", 3),
    ],
)
def test_pipeline_id_follows_each_setting(monkeypatch, module, name, value):
    before = pipeline.pipeline_id()
    monkeypatch.setattr(module, name, value)
    assert pipeline.pipeline_id() != before


def test_pipeline_id_follows_options_and_templates(monkeypatch):
    base = pipeline.pipeline_id()
    assert len({base, pipeline.pipeline_id(flip=False), pipeline.pipeline_id(alignment="mtcnn")}) == 3
    shifted = alignment.DLIB_TEMPLATE.copy()
    shifted[0, 0] += 0.05
    monkeypatch.setattr(alignment, "DLIB_TEMPLATE", shifted)
    assert pipeline.pipeline_id() != base


def test_embedding_key_covers_version_weights_code_and_options(monkeypatch, tmp_path):
    import facenet_keras

    key = pipeline.embedding_key()
    assert key.startswith(f"facenet-keras-{facenet_keras.__version__}|dlib_resnet_v1@")
    assert pipeline.alignment_id() in key and "flip=1" in key
    assert len({key, pipeline.embedding_key(flip=False), pipeline.embedding_key(alignment="mtcnn")}) == 3
    # a saved model: keyed by its bytes, not its name
    a, b = tmp_path / "a.keras", tmp_path / "b.keras"
    a.write_bytes(b"model one")
    b.write_bytes(b"model two")
    assert pipeline.embedding_key(a) != pipeline.embedding_key(b) != key
    monkeypatch.setattr(facenet_keras, "__version__", "99.0")
    assert pipeline.embedding_key() != key
    monkeypatch.undo()
    # an edit of the embedding code (here: faces/pipeline.py itself, as a copy) changes the key
    package = tmp_path / "pkg"
    for name in pipeline._EMBEDDING_CODE:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        source = Path(pipeline.__file__).resolve().parents[1] / name
        (package / name).write_bytes(source.read_bytes())
    monkeypatch.setattr(pipeline, "__file__", str(package / "faces" / "pipeline.py"))
    assert pipeline.embedding_key() == key
    with open(package / "faces" / "pipeline.py", "a") as f:
        f.write("\n# main face: the largest\n")
    assert pipeline.embedding_key() != key


def test_model_objects_are_keyed_by_their_weights():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="enc")
    key = pipeline.embedding_key(model)
    w = model.get_weights()
    model.set_weights([w[0] + 1.0, w[1]])
    assert pipeline.embedding_key(model) != key


def test_default_embedding_is_dlibs_chip_averaged_with_its_mirror(detector, encoder):
    """Behaviour, not just names: a face's default embedding is the mean of the encoder's outputs
    for dlib's chip and its mirror image (neither the plain chip nor MTCNN's chip)."""
    import matplotlib.cbook

    from facenet_keras.images import load_image
    from facenet_keras.models.encoder import encode_chips

    image = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
    (face,) = pipeline.encode(image, detector=detector)
    dets = detector.detect(image)
    dlib_chip = pipeline.face_chips(image, dets, 150, alignment="dlib")
    mtcnn_chip = pipeline.face_chips(image, dets, 150, alignment="mtcnn")
    plain, mirrored, other = (encode_chips(c, model=encoder)[0] for c in (dlib_chip, dlib_chip[:, :, ::-1], mtcnn_chip))
    expected = (plain + mirrored) / 2
    np.testing.assert_allclose(face.embedding, expected, atol=1e-5)
    # the alternatives are far enough apart for the check above to tell them apart
    assert np.linalg.norm(plain - expected) > 1e-3
    assert np.linalg.norm(other - expected) > 1e-3
