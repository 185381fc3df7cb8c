"""Encoder profiles: "fast" (dlib's ResNet) and "accurate" (dlib's ResNet fused with FaceNet's
Inception-ResNet-v1), chosen in one word from Python and the CLI, each with its own embedding space
and threshold, on real photos of ../shared/data/faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

# two photos of one man, one of another
PHOTOS = ("barack_obama/1.jpg", "barack_obama/2.jpg", "joe_biden/1.jpg")


@pytest.fixture(scope="module")
def faces(shared_data, detector):
    """(image, main face) of each photo in PHOTOS."""
    from facenet_keras import load_image
    from facenet_keras.faces.pipeline import primary_face

    out = []
    for rel in PHOTOS:
        image = load_image(shared_data / "faces" / rel)
        face = primary_face(detector.detect(image), image.shape)
        assert face is not None, rel
        out.append((image, face))
    return out


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_fused_chips_stack_both_encoders_chips(faces):
    from facenet_keras.faces.facenet_chips import facenet_chips
    from facenet_keras.faces.pipeline import cut_chips, face_chips

    image, face = faces[0]
    fused = cut_chips(image, [face], "accurate")
    assert fused.shape == (1, 160, 160, 6) and fused.dtype == np.uint8
    np.testing.assert_array_equal(fused[..., :3], facenet_chips(image, [face], method="box"))
    np.testing.assert_array_equal(fused[:, 5:155, 5:155, 3:], face_chips(image, [face], 150))
    assert not fused[:, :5, :, 3:].any() and not fused[:, :, 155:, 3:].any()  # the black border
    mirrored = fused[:, :, ::-1]  # mirroring the input mirrors both chips in place
    np.testing.assert_array_equal(mirrored[:, 5:155, 5:155, 3:], face_chips(image, [face], 150)[:, :, ::-1])
    assert cut_chips(image, [], "accurate").shape == (0, 160, 160, 6)


def test_accurate_embedding_is_the_weighted_fusion_of_both_encoders(faces):
    """The fused model against the two encoders run separately and fused by the formula."""
    import facenet_keras as fk
    from facenet_keras import encode_chips
    from facenet_keras.faces.facenet_chips import facenet_chips
    from facenet_keras.faces.fusion import FUSION_WEIGHT
    from facenet_keras.faces.pipeline import face_chips
    from facenet_keras.models.inception_resnet_v1 import load_inception_resnet_v1

    image, face = faces[0]
    got = fk.encode(image, profile="accurate")
    main = max(got, key=lambda f: f.area)
    assert main.embedding.shape == (640,)
    dlib_chip = face_chips(image, [face], 150)
    box_chip = facenet_chips(image, [face], method="box")
    a = _unit(encode_chips(np.concatenate([dlib_chip, dlib_chip[:, :, ::-1]])))
    b = encode_chips(np.concatenate([box_chip, box_chip[:, :, ::-1]]), model=load_inception_resnet_v1())
    w = FUSION_WEIGHT
    want = np.concatenate([np.sqrt(1 - w) * a.mean(axis=0), np.sqrt(w) * b.mean(axis=0)])
    np.testing.assert_allclose(main.embedding, want, atol=1e-5)
    with pytest.raises(ValueError, match="profile or a model"):
        fk.encode(image, profile="accurate", model="x.keras")
    with pytest.raises(ValueError, match="profile must be one of"):
        fk.encode(image, profile="accurrate")


def test_each_profile_has_its_own_space_and_threshold(faces, tmp_path):
    from facenet_keras.faces.fusion import FUSED_THRESHOLD
    from facenet_keras.faces.pipeline import embedding_space_id, encoder_threshold, resolve_model
    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.identity.recognition import check_gallery_space, enroll_faces
    from facenet_keras.identity.store import EmbeddingSpaceError
    from facenet_keras.models.metadata import PRETRAINED_THRESHOLD

    assert embedding_space_id("fast") == embedding_space_id(None) != embedding_space_id("accurate")
    assert encoder_threshold("fast") == PRETRAINED_THRESHOLD
    assert encoder_threshold("accurate") == encoder_threshold(resolve_model("accurate")) == FUSED_THRESHOLD
    assert FUSED_THRESHOLD != PRETRAINED_THRESHOLD
    # a gallery enrolled with one profile refuses the other: the two are never compared
    from facenet_keras.faces.pipeline import encode

    image, _ = faces[0]
    with FaceGallery(tmp_path / "fast.db") as g:
        enroll_faces(g, "obama", ["1.jpg"], [image], [encode(image)], [None], face="largest")
        check_gallery_space(g, "fast")
        with pytest.raises(EmbeddingSpaceError):
            check_gallery_space(g, "accurate")


def test_accurate_profile_tells_the_two_men_apart(faces):
    from facenet_keras.faces.fusion import FUSED_THRESHOLD
    from facenet_keras.faces.pipeline import cut_chips, embed_chips

    emb = np.concatenate([embed_chips(cut_chips(im, [f], "accurate"), model="accurate") for im, f in faces])
    d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    print(f"accurate: obama-obama {d[0, 1]:.3f}, obama-biden {d[0, 2]:.3f} {d[1, 2]:.3f}")
    assert d[0, 1] < FUSED_THRESHOLD < min(d[0, 2], d[1, 2])


def test_cli_profile_option(shared_data, capsys, tmp_path):
    from facenet_keras.cli import main

    a, b = (str(shared_data / "faces" / p) for p in PHOTOS[:2])
    assert main(["compare", a, b, "--profile", "accurate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["threshold"] == pytest.approx(0.45) and out["distance"] < 0.45
    assert main(["compare", a, b, "--profile", "accurate", "--model", str(tmp_path / "m.keras")]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert main(["compare", a, b, "--profile", "best"]) == 2
    # a gallery of the fast profile refuses faces of the accurate one, in one line, exit 2
    g = str(tmp_path / "g.db")
    assert main(["--gallery", g, "enroll", "obama", a, "--face", "largest"]) == 0
    capsys.readouterr()
    assert main(["--gallery", g, "recognize", b, "--profile", "accurate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_watch_and_library_refuse_the_accurate_profile(tmp_path):
    from facenet_keras.live.watch import watch

    with pytest.raises(ValueError, match="fast profile"):
        next(iter(watch([], None, model="accurate")))


def test_channel_slice_serialises():
    import keras

    from facenet_keras.models.layers import ChannelSlice

    inputs = keras.Input((4, 4, 6))
    model = keras.Model(inputs, ChannelSlice(3, 6)(inputs))
    x = np.arange(2 * 4 * 4 * 6, dtype=np.float32).reshape(2, 4, 4, 6)
    np.testing.assert_array_equal(np.asarray(model(x)), x[..., 3:])
    clone = keras.Model.from_config(model.get_config())
    np.testing.assert_array_equal(np.asarray(clone(x)), x[..., 3:])
    with pytest.raises(ValueError, match="start < stop"):
        ChannelSlice(3, 3)
