"""``facenet-keras train``: train or fine-tune an encoder on a folder of identities (ROOT/<person>/<photo>).

Faces are detected and aligned once (cached), people are split into training and validation
identities (never one person's photos on both sides), and the encoder is fitted with online triplet
mining on P x K batches. After every epoch the verification accuracy on the validation identities
is printed and logged. The result is a ``.keras`` encoder that ``encode``/``verify``/``recognize``/
``evaluate`` take through ``--model``; it carries its own distance threshold, chosen on the validation
identities' pairs for ``--target-far`` (a threshold belongs to an encoder: dlib's 0.6 is wrong for it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from . import EXIT_OK

# per architecture: defaults that suit it (distance, margin, learning rate)
_DEFAULTS = {
    "nn4_small2": {"distance": "squared", "margin": 0.2, "lr": 1e-3, "optimizer": "adam"},
    "dlib_resnet": {"distance": "euclidean", "margin": 0.1, "lr": 1e-4, "optimizer": "sgd"},
}


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train or fine-tune an encoder with triplet mining on ROOT/<person>/<photo>",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog="Resume: if a run is interrupted, run the same command again: it continues from the last "
        "finished epoch (state kept in --checkpoint-dir). Example: facenet-keras train faces/ "
        "--model dlib_resnet --from-pretrained --epochs 3 --out tuned.keras",
    )
    p.add_argument("root", metavar="ROOT", help="folder of identities: ROOT/<person>/<photo>")
    p.add_argument(
        "--model",
        choices=sorted(_DEFAULTS),
        default="nn4_small2",
        help="architecture (default nn4_small2, trained from scratch)",
    )
    p.add_argument(
        "--from-pretrained",
        action="store_true",
        help="start from the pretrained weights (dlib_resnet only) and fine-tune",
    )
    p.add_argument("--init", metavar="MODEL.keras", help="start from a saved encoder (continue training it)")
    p.add_argument(
        "--mining",
        choices=["semi-hard", "hard", "all"],
        default="semi-hard",
        help="online triplet mining in each batch (default semi-hard, as FaceNet)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="batches per epoch (default: about one pass over the training photos)",
    )
    p.add_argument("--people", "-P", type=int, default=8, help="identities per batch (P, default 8)")
    p.add_argument("--photos", "-K", type=int, default=4, help="photos per identity in a batch (K, default 4)")
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="triplet margin alpha (default 0.2 squared distance for nn4_small2, 0.1 Euclidean for dlib_resnet)",
    )
    p.add_argument(
        "--distance",
        choices=["squared", "euclidean"],
        default=None,
        help="distance the loss uses (default: squared for nn4_small2, euclidean for dlib_resnet)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default 1e-3 with Adam from scratch, 1e-4 with SGD to fine-tune dlib_resnet)",
    )
    p.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default=None,
        help="default: adam from scratch, sgd (momentum 0.9) to fine-tune a pretrained encoder "
        "(Adam's first steps move every weight by the learning rate and shift dlib's embeddings)",
    )
    p.add_argument("--width", type=float, default=1.0, help="nn4_small2 channel multiplier (default 1)")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.25,
        help="share of identities held out for validation (default 0.25; 0 disables)",
    )
    p.add_argument("--no-augment", action="store_true", help="no flips, crops or brightness changes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="where aligned chips are cached (default ~/.cache/facenet_keras)")
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        help="per-epoch encoders, log.csv and resume state (default: OUT with .ckpt instead of .keras)",
    )
    p.add_argument(
        "--target-far",
        type=float,
        default=1e-3,
        metavar="RATE",
        help="false accept rate on the validation identities' pairs for which the model's own "
        "threshold is chosen (default 1e-3; saved inside MODEL.keras)",
    )
    p.add_argument("--out", required=True, metavar="MODEL.keras", help="where the trained encoder is saved")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def _build_encoder(args):
    import keras

    if args.init:
        import facenet_keras.models.layers  # noqa: F401  (custom layers of saved dlib models)

        if not Path(args.init).is_file():
            raise FileNotFoundError(f"{args.init}: no such model file")
        return keras.saving.load_model(args.init, compile=False)
    if args.model == "dlib_resnet":
        from facenet_keras.models import dlib_resnet

        return dlib_resnet("pretrained" if args.from_pretrained else None)
    if args.from_pretrained:
        raise ValueError(
            "nn4_small2 has no pretrained weights here: train it from scratch, or use "
            "--model dlib_resnet --from-pretrained"
        )
    from facenet_keras.models.nn4_small2 import nn4_small2

    return nn4_small2(width=args.width, bn_momentum=0.9)


def validation_threshold(embeddings, labels, target_far: float) -> tuple[float, int]:
    """The threshold for ``target_far`` on every pair (i < j) of the validation embeddings, and the
    number of pairs: the trained model's own threshold."""
    import numpy as np

    from facenet_keras.evaluation.metrics import calibrate
    from facenet_keras.identity.search import pairwise_distances

    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    d = pairwise_distances(embeddings, embeddings)[i, j]
    return calibrate(d, labels[i] == labels[j], target_far), int(d.size)


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from facenet_keras.training.data import load_chips, pk_dataset, split_identities
    from facenet_keras.training.fit import embed, train_encoder, verification_accuracy

    out = Path(args.out)
    if out.suffix != ".keras":
        raise ValueError(f"--out must end in .keras, got {out}")
    if args.epochs < 1 or args.people < 2 or args.photos < 2:
        raise ValueError("need --epochs >= 1, --people >= 2 and --photos >= 2")
    defaults = _DEFAULTS[args.model]
    margin = defaults["margin"] if args.margin is None else args.margin
    squared = (args.distance or defaults["distance"]) == "squared"
    scratch = not (args.from_pretrained or args.init)
    optimizer = args.optimizer or ("adam" if scratch else defaults["optimizer"])
    if args.lr is not None:
        lr = args.lr
    elif optimizer == "adam":
        lr = 1e-3 if scratch else 1e-5
    else:
        lr = defaults["lr"] if args.model == "dlib_resnet" else 1e-3

    chips = load_chips(args.root, cache_dir=args.cache_dir, progress=not args.quiet)
    counts = {n: int((chips.labels == i).sum()) for i, n in enumerate(chips.names)}
    if args.val_fraction > 0:
        train_names, val_names = split_identities(chips.names, args.val_fraction, args.seed, counts)
    else:
        train_names, val_names = list(chips.names), []
    train = chips.subset(train_names)
    encoder = _build_encoder(args)
    size = int(encoder.input_shape[1])

    def at_size(x):
        import tensorflow as tf

        x = np.asarray(x, np.float32)
        return x if x.shape[1] == size else tf.image.resize(x, (size, size), antialias=True).numpy()

    validation = None
    if val_names:
        val = chips.subset(val_names)
        validation = (at_size(val.chips), val.labels)
    steps = args.steps_per_epoch or max(5, math.ceil(len(train) / (args.people * args.photos)))
    ds = pk_dataset(
        train.chips, train.labels, args.people, args.photos, size=size, augment=not args.no_augment, seed=args.seed
    )
    ckpt = Path(args.checkpoint_dir) if args.checkpoint_dir else out.with_suffix(".ckpt")
    print(
        f"training {args.model} ({encoder.count_params():,} parameters, input {size}x{size}) on "
        f"{len(train)} photos of {len(train_names)} people; validation: {len(val_names)} other people; "
        f"{args.mining} mining, margin {margin} ({'squared' if squared else 'Euclidean'} distance), "
        f"{optimizer} lr {lr:g}, {args.epochs} epochs x {steps} batches of {args.people}x{args.photos}",
        file=sys.stderr,
    )
    if (ckpt / "backup").is_dir():
        print(f"resuming from the state in {ckpt}/backup", file=sys.stderr)
    before = verification_accuracy(embed(encoder, validation[0]), validation[1]) if validation else None
    hist = train_encoder(
        encoder,
        ds,
        epochs=args.epochs,
        steps_per_epoch=steps,
        mining=args.mining,
        margin=margin,
        squared=squared,
        learning_rate=lr,
        optimizer=optimizer,
        validation=validation,
        checkpoint_dir=ckpt,
        verbose=0 if args.quiet else 1,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    encoder.save(out)
    threshold = None
    if validation is not None:
        from facenet_keras.models.metadata import write_metadata

        threshold, n_pairs = validation_threshold(embed(encoder, validation[0]), validation[1], args.target_far)
        write_metadata(
            out,
            threshold=threshold,
            target_far=args.target_far,
            threshold_source=f"train: {n_pairs} pairs of {len(val_names)} validation identities "
            f"(seed {args.seed}, val-fraction {args.val_fraction})",
        )
    after = hist.history.get("val_verification_accuracy", [None])[-1]
    summary = {
        "model": args.model,
        "out": str(out),
        "epochs": args.epochs,
        "mining": args.mining,
        "margin": margin,
        "optimizer": optimizer,
        "learning_rate": lr,
        "train_identities": len(train_names),
        "val_identities": len(val_names),
        "val_verification_accuracy_before": before,
        "val_verification_accuracy_after": after,
        "loss": [float(v) for v in hist.history.get("loss", [])],
        "threshold": threshold,
        "target_far": args.target_far,
    }
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=2))
    else:
        print(f"saved {out}")
        if threshold is not None:
            print(
                f"its threshold: {threshold:.4f} (false accept rate <= {args.target_far:g} on the validation "
                "identities' pairs), saved inside the model"
            )
        else:
            print(
                "no validation identities, so no threshold: run 'facenet-keras calibrate PAIRS.csv --model "
                f"{out} --target-far 1e-3 --save-model' before using it to decide"
            )
        if before is not None and after is not None:
            print(
                f"validation verification accuracy ({len(val_names)} unseen people): "
                f"{before:.4f} before, {after:.4f} after"
            )
    return EXIT_OK
