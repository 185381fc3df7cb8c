"""Fine-tune the pretrained dlib ResNet on /work/shared/data/faces and check LFW fold 1 does not degrade.

Steps (all through the command line, as a user would run them):
1. ``facenet-keras train FACES --model dlib_resnet --from-pretrained --mining semi-hard --epochs E
   --out OUT/finetuned.keras`` (split by identity; validation verification accuracy after each epoch);
2. ``facenet-keras evaluate LFW/pairs.csv --root LFW`` with the pretrained encoder and with
   ``--model OUT/finetuned.keras`` (10-fold accuracy on LFW fold 1's 600 pairs).
The fine-tuned figure should stay within 0.5 points of the pretrained one: a short run with a small
learning rate (SGD: Adam's sign-like first steps shift dlib's embeddings by ~0.2 each) adapts the
encoder without wrecking what it knew. LFW evaluation is slow on CPU
(several minutes per model); ``--skip-pretrained`` reuses a figure you already have.

    python benchmarks/finetune_faces.py [--epochs 2] [--steps 6] [--out /tmp/finetune] [--json r.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _cli_json(argv: list[str]) -> dict:
    """Run a facenet-keras command in-process with --json and parse what it prints."""
    from facenet_keras.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"facenet-keras {' '.join(argv)} exited {code}")
    text = buf.getvalue()
    return json.loads(text[text.index("{") :])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, default=SHARED / "faces")
    ap.add_argument("--lfw", type=Path, default=SHARED / "lfw-dev")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-4, help="SGD learning rate (default 1e-4)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/facenet_keras_finetune"))
    ap.add_argument(
        "--skip-pretrained",
        type=float,
        default=None,
        metavar="ACC",
        help="use this pretrained LFW accuracy instead of measuring it",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.out / "finetuned.keras"
    t0 = time.perf_counter()
    train = _cli_json(
        [
            "train",
            str(args.faces),
            "--model",
            "dlib_resnet",
            "--from-pretrained",
            "--mining",
            "semi-hard",
            "--epochs",
            str(args.epochs),
            "--steps-per-epoch",
            str(args.steps),
            "--lr",
            str(args.lr),
            "--optimizer",
            "sgd",
            "--out",
            str(model),
            "--quiet",
            "--json",
        ]
    )
    train_s = time.perf_counter() - t0
    print(
        f"fine-tuned in {train_s:.0f} s: validation verification accuracy (unseen people) "
        f"{train['val_verification_accuracy_before']:.4f} -> {train['val_verification_accuracy_after']:.4f}",
        flush=True,
    )
    pairs = str(args.lfw / "pairs.csv")
    if args.skip_pretrained is None:
        pre = _cli_json(["evaluate", pairs, "--root", str(args.lfw), "--json"])["accuracy"]
    else:
        pre = args.skip_pretrained
    tuned = _cli_json(["evaluate", pairs, "--root", str(args.lfw), "--model", str(model), "--json"])["accuracy"]
    diff = 100 * (tuned - pre)
    print(
        f"LFW fold 1 (600 pairs, 10-fold accuracy): pretrained {pre:.4f}, fine-tuned {tuned:.4f} "
        f"({diff:+.2f} points; {'within' if abs(diff) <= 0.5 else 'OUTSIDE'} 0.5 points)"
    )
    result = {
        "train": train,
        "train_seconds": round(train_s, 1),
        "lfw_pretrained": pre,
        "lfw_finetuned": tuned,
        "difference_points": diff,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if abs(diff) <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
