"""One-shot learning on classes never seen in training, with scikit-learn's digits (no face data).

Train an encoder with semi-hard triplet mining on digits 0-6, then enrol digits 7, 8 and 9 from ONE
example each and classify every other 7/8/9 by its nearest enrolled example (chance: 1/3). The
baseline is the same encoder untrained (random weights). Accuracies are averaged over 50 random
choices of the enrolled examples, and reported per seed and as a mean over seeds.

Encoders: ``small_convnet`` (two conv layers, 16x16 input, 16-D output: what the CI test trains)
and ``nn4_small2`` (the course's Inception encoder at width 0.25 on 32x32 input).

    python benchmarks/one_shot_digits.py [--models small_convnet nn4_small2] [--seeds 0 1 2]
                                          [--plot projection.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TRAIN_CLASSES = tuple(range(7))
NEW_CLASSES = (7, 8, 9)
CONFIGS = {
    "small_convnet": dict(size=16, epochs=4, steps=15, margin=0.5, lr=3e-3),
    "nn4_small2": dict(size=32, width=0.25, epochs=6, steps=20, margin=0.2, lr=3e-3),
}


def small_convnet(size: int = 16, dim: int = 16):
    """Two 3x3 conv layers (32, 64 filters) with max pooling, a dense layer, L2 normalisation."""
    import keras

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
        ],
        name="small_convnet",
    )


def one_shot_trials(model, images, labels, classes=NEW_CLASSES, trials: int = 50, seed: int = 0) -> float:
    """Mean one-shot accuracy over ``trials`` random draws of one enrolled example per class."""
    from facenet_keras.training.fit import one_shot_trials as trials_of

    return trials_of(model, images, labels, classes, trials=trials, seed=seed)


def run(model_name: str = "small_convnet", seed: int = 0, return_models: bool = False) -> dict:
    """Train on digits 0-6, one-shot on 7-9; returns the figures as a dict."""
    import keras

    from facenet_keras.models.nn4_small2 import nn4_small2
    from facenet_keras.training.data import load_digits_images, pk_dataset
    from facenet_keras.training.fit import embed, train_encoder

    c = CONFIGS[model_name]
    keras.utils.set_random_seed(seed)
    images, labels = load_digits_images(c["size"])
    if model_name == "nn4_small2":
        encoder = nn4_small2((c["size"], c["size"], 3), width=c["width"], bn_momentum=0.9)
    else:
        encoder = small_convnet(c["size"])
    before = one_shot_trials(encoder, images, labels, seed=seed)
    new = np.isin(labels, NEW_CLASSES)
    emb_before = embed(encoder, images[new])
    train = np.isin(labels, TRAIN_CLASSES)
    ds = pk_dataset(images[train], labels[train], P=7, K=8, augment=False, seed=seed)
    t0 = time.perf_counter()
    hist = train_encoder(
        encoder,
        ds,
        epochs=c["epochs"],
        steps_per_epoch=c["steps"],
        mining="semi-hard",
        margin=c["margin"],
        learning_rate=c["lr"],
        verbose=0,
    )
    seconds = time.perf_counter() - t0
    after = one_shot_trials(encoder, images, labels, seed=seed)
    out = {
        "model": model_name,
        "seed": seed,
        **c,
        "params": int(encoder.count_params()),
        "train_seconds": round(seconds, 1),
        "untrained": round(before, 4),
        "trained": round(after, 4),
        "final_loss": round(float(hist.history["loss"][-1]), 5),
    }
    if return_models:
        out["_projection"] = (emb_before, embed(encoder, images[new]), labels[new])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=["small_convnet", "nn4_small2"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--plot", default=None, help="PCA of the unseen digits' embeddings before/after (first run)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    results = []
    for name in args.models:
        for seed in args.seeds:
            r = run(name, seed, return_models=bool(args.plot) and not results)
            proj = r.pop("_projection", None)
            if proj is not None:
                from facenet_keras.evaluation.plots import plot_embedding_projection, save_figure

                fig = plot_embedding_projection(
                    {"untrained": proj[0], "trained on digits 0-6": proj[1]},
                    proj[2],
                    title=f"{name}: digits 7-9, never seen in training",
                )
                save_figure(fig, args.plot)
            results.append(r)
            print(json.dumps(r), flush=True)
    print(f"\none-shot accuracy on digits 7-9 (never trained on), chance 0.333; mean over seeds {args.seeds}")
    for name in args.models:
        rs = [r for r in results if r["model"] == name]
        print(
            f"{name:<14} untrained {np.mean([r['untrained'] for r in rs]):.3f}   trained "
            f"{np.mean([r['trained'] for r in rs]):.3f}   per seed: "
            + ", ".join(f"{r['untrained']:.3f}->{r['trained']:.3f}" for r in rs)
            + f"   ({np.mean([r['train_seconds'] for r in rs]):.0f} s training each)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
