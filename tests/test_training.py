"""Training: NN4.small2, the identity split, P x K batches, one-shot digits, and the train command."""

from __future__ import annotations

import csv
import json
import os

import keras
import numpy as np
import pytest

from facenet_keras.models.nn4_small2 import nn4_small2  # noqa: E402
from facenet_keras.training.data import (  # noqa: E402
    load_digits_images,
    pk_dataset,
    pk_indices,
    split_identities,
)
from facenet_keras.training.fit import (  # noqa: E402
    one_shot_accuracy,
    one_shot_trials,
    train_encoder,
    verification_accuracy,
)


def test_nn4_small2_is_the_course_model():
    m = nn4_small2()
    assert m.input_shape == (None, 96, 96, 3) and m.output_shape == (None, 128)
    assert 3.6e6 < m.count_params() < 3.9e6  # the course's ~3.74M parameters
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 96, 96, 3)).astype("float32")
    e = np.asarray(m(x, training=False))
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert not any(isinstance(l, keras.layers.Lambda) for l in m.layers)


def test_split_is_by_identity():
    names = [f"p{i}" for i in range(20)]
    counts = {n: (1 if i % 4 == 0 else 3) for i, n in enumerate(names)}
    train, val = split_identities(names, 0.25, seed=1, min_val_photos=counts)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(names)
    assert len(val) == 5 and all(counts[n] >= 2 for n in val)
    assert (train, val) == split_identities(names, 0.25, seed=1, min_val_photos=counts)


def test_pk_batches():
    labels = np.array([0] * 5 + [1] * 2 + [2] * 1 + [3] * 4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = pk_indices(labels, P=3, K=4, rng=rng)
        assert idx.shape == (12,)
        people = labels[idx].reshape(3, 4)
        assert (people == people[:, :1]).all()  # K photos of each person, grouped
        assert len(set(people[:, 0])) == 3 and 2 not in people  # 3 distinct people, none with 1 photo
    images = np.random.default_rng(1).integers(0, 256, size=(12, 20, 20, 3)).astype(np.uint8)
    x, y = next(iter(pk_dataset(images, labels, P=2, K=3, size=16, seed=0)))
    assert x.shape == (6, 16, 16, 3) and y.shape == (6,)
    assert float(np.min(x)) >= 0.0 and float(np.max(x)) <= 255.0


def test_verification_and_one_shot_accuracy():
    emb = np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.2]], float)
    assert verification_accuracy(emb, [0, 0, 1, 1]) == 1.0
    assert verification_accuracy(emb, [0, 1, 0, 1]) < 0.8
    assert one_shot_accuracy(emb[[0, 2]], [7, 9], emb[[1, 3]], [7, 9]) == 1.0
    assert one_shot_accuracy(emb[[0, 2]], [9, 7], emb[[1, 3]], [7, 9]) == 0.0


def _one_shot(model, images, labels, classes, trials=40, seed=0):
    return one_shot_trials(model, images, labels, classes, trials=trials, seed=seed)


def small_digit_encoder(size=16, dim=16):
    """A small conv encoder for 16x16 digits (the CI-sized stand-in for NN4.small2)."""
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            L.Rescaling(1 / 255.0),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(dim),
            L.UnitNormalization(),
        ]
    )


def test_one_shot_digits_beats_chance_and_the_untrained_encoder():
    """Train on digits 0-6 (semi-hard mining), enrol 7, 8, 9 from ONE example each, classify the rest.

    Averaged over three seeds (one seed's one-shot figure swings by several points)."""
    images, labels = load_digits_images(16)
    train = labels < 7
    new = (7, 8, 9)
    before, after = [], []
    for seed in (0, 1, 2):
        keras.utils.set_random_seed(seed)
        encoder = small_digit_encoder()
        before.append(_one_shot(encoder, images, labels, new, seed=seed))
        ds = pk_dataset(images[train], labels[train], P=7, K=8, augment=False, seed=seed)
        hist = train_encoder(
            encoder, ds, epochs=4, steps_per_epoch=15, mining="semi-hard", margin=0.5, learning_rate=3e-3, verbose=0
        )
        assert hist.history["loss"][-1] < hist.history["loss"][0]
        after.append(_one_shot(encoder, images, labels, new, seed=seed))
    before, after = float(np.mean(before)), float(np.mean(after))
    print(f"one-shot accuracy on unseen digits 7-9: untrained {before:.3f}, trained {after:.3f} (chance 0.333)")
    assert after > 0.65  # well above chance (1/3)
    assert after > before + 0.05  # and above the untrained encoder


class _StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.stop_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.stop_epoch:
            raise RuntimeError("simulated interruption")


def test_checkpoints_and_resume(tmp_path):
    images, labels = load_digits_images(16)
    keep = labels < 4
    ds = pk_dataset(images[keep], labels[keep], P=4, K=4, augment=False)
    keras.utils.set_random_seed(0)
    encoder = small_digit_encoder()
    ckpt = tmp_path / "ckpt"
    val = (images[labels >= 8][:40], labels[labels >= 8][:40])
    with pytest.raises(RuntimeError, match="simulated"):
        train_encoder(
            encoder,
            ds,
            epochs=3,
            steps_per_epoch=2,
            validation=val,
            checkpoint_dir=ckpt,
            callbacks=[_StopAt(2)],
            verbose=0,
        )
    assert (ckpt / "encoder-epoch002.keras").is_file() and (ckpt / "backup").is_dir()
    # a fresh process would rebuild the model and run the same call: it continues at epoch 3
    encoder2 = small_digit_encoder()
    hist = train_encoder(encoder2, ds, epochs=3, steps_per_epoch=2, validation=val, checkpoint_dir=ckpt, verbose=0)
    assert len(hist.history["loss"]) == 1
    rows = list(csv.DictReader(open(ckpt / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    saved = keras.saving.load_model(ckpt / "encoder-epoch003.keras")
    np.testing.assert_allclose(np.asarray(saved(images[:4])), np.asarray(encoder2(images[:4])), atol=1e-5)
    # the logged figure is the validation accuracy of the encoder saved at that epoch
    from facenet_keras.training.fit import embed

    for row, name in ((rows[1], "encoder-epoch002.keras"), (rows[2], "encoder-epoch003.keras")):
        model = keras.saving.load_model(ckpt / name)
        expected = verification_accuracy(embed(model, val[0]), val[1])
        assert float(row["val_verification_accuracy"]) == pytest.approx(expected, abs=1e-6)


@pytest.fixture()
def tiny_faces_root(shared_data, tmp_path):
    """A small folder of identities: five people's 150x150 crops from faces/ (symlinks)."""
    root = tmp_path / "people"
    src = shared_data / "faces"
    for person in ("bbt_amy", "bbt_howard", "bbt_leonard", "bbt_penny", "bbt_raj"):
        (root / person).mkdir(parents=True)
        for photo in sorted((src / person).iterdir()):
            os.symlink(photo, root / person / photo.name)
    return root


def test_train_command_end_to_end(tiny_faces_root, tmp_path, capsys):
    from facenet_keras.cli import main
    from facenet_keras.faces.pipeline import resolve_model

    out = tmp_path / "model.keras"
    argv = [
        "train",
        str(tiny_faces_root),
        "--model",
        "nn4_small2",
        "--width",
        "0.25",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "-P",
        "3",
        "-K",
        "3",
        "--val-fraction",
        "0.4",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "validation verification accuracy (2 unseen people)" in printed
    assert out.is_file() and list((tmp_path / "cache").glob("chips-*.npz"))
    rows = list(csv.DictReader(open(tmp_path / "model.ckpt" / "log.csv")))
    assert len(rows) == 1 and "val_verification_accuracy" in rows[0] and "active_triplets" in rows[0]
    model = resolve_model(str(out))
    assert model.input_shape == (None, 96, 96, 3) and model.output_shape == (None, 128)
    # nn4_small2 has no pretrained weights: asking for them is a usage error (exit 2), not random weights
    assert main(argv[:-2] + ["--from-pretrained", "--out", str(tmp_path / "x.keras")]) == 2


def test_embedding_projection_plot(tmp_path):
    from facenet_keras.evaluation.plots import plot_embedding_projection, save_figure

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    before = rng.normal(size=(30, 16))
    after = before + 5 * np.eye(3, 16)[labels]
    fig = plot_embedding_projection({"before": before, "after": after}, labels, names=["a", "b", "c"])
    assert len(fig.axes) == 2
    assert save_figure(fig, tmp_path / "p.png") and (tmp_path / "p.png").stat().st_size > 1000


def _train(root, tmp_path, *options):
    """`facenet-keras train` on ROOT with a fixed seed; returns the JSON summary."""
    import io
    from contextlib import redirect_stdout

    from facenet_keras.cli import main

    keras.utils.set_random_seed(0)
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            [
                "--json",
                "train",
                str(root),
                "--epochs",
                "1",
                "--steps-per-epoch",
                "1",
                "-P",
                "3",
                "-K",
                "3",
                "--quiet",
                "--no-augment",
                "--cache-dir",
                str(tmp_path / "cache"),
                *options,
            ]
        )
    assert code == 0
    return json.loads(out.getvalue())


def test_train_mining_option_changes_the_loss(tiny_faces_root, tmp_path):
    """Same seed, same batch, same initial weights: only --mining differs (batch-hard vs batch-all,
    neither the default), and so does the loss. Were the option ignored, both would be semi-hard."""
    common = ["--model", "nn4_small2", "--width", "0.25", "--val-fraction", "0"]
    losses = {}
    for mining in ("hard", "all"):
        r = _train(tiny_faces_root, tmp_path, *common, "--mining", mining, "--out", str(tmp_path / f"{mining}.keras"))
        assert r["mining"] == mining and np.isfinite(r["loss"][0])
        losses[mining] = r["loss"][0]
    assert abs(losses["hard"] - losses["all"]) > 1e-3 * max(abs(v) for v in losses.values()), losses


def test_train_from_pretrained_starts_from_dlibs_weights(tiny_faces_root, tmp_path):
    """--from-pretrained fine-tunes dlib's ResNet: with a vanishing learning rate the saved encoder
    still computes dlib's embeddings, and the validation accuracy before training is dlib's."""
    from facenet_keras.images import load_image
    from facenet_keras.models.encoder import encode_chips, load_encoder

    out = tmp_path / "tuned.keras"
    r = _train(
        tiny_faces_root,
        tmp_path,
        "--model",
        "dlib_resnet",
        "--from-pretrained",
        "--lr",
        "1e-12",
        "-P",
        "2",
        "-K",
        "2",
        "--val-fraction",
        "0.4",
        "--out",
        str(out),
    )
    assert r["optimizer"] == "sgd" and r["val_verification_accuracy_before"] >= 0.9
    chips = np.stack([load_image(p) for p in sorted(tiny_faces_root.glob("*/*"))[:6]])
    assert chips.shape[1:] == (150, 150, 3)
    tuned = keras.saving.load_model(out, compile=False)
    np.testing.assert_allclose(encode_chips(chips, model=tuned), encode_chips(chips, model=load_encoder()), atol=1e-4)
