"""The documented open-set identification figures (docs/performance.md) on ``faces/``, recomputed and checked.

Runs the protocol of ``facenet-keras evaluate-identification ../shared/data/faces`` (the first photo
of each of the 34 people with several photos enrolled one-shot, every other photo a probe, the 10
people with a single photo strangers; pretrained encoder, default pipeline, tau 0.6) and compares
with what docs/performance.md states: identification rate 100%, 9 of 10 strangers "not recognised", a
stranger accepted by one comparison with probability 0.0020 and by a gallery of 33 with 0.066
(``1-(1-p)^K`` predicts 0.064), and for 1% stranger false accepts tau <= 0.653 for 1:1 but
<= 0.462 for 1:33. Exits 1 when a figure no longer matches the docs (to its printed precision).

    python benchmarks/open_set_faces.py [--root ../shared/data/faces] [--json out.json]

Embeddings go through the embedding cache ($FACENET_KERAS_HOME), so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"

# docs/performance.md, "Accuracy" and "How the default threshold was chosen": (value, tolerance)
README = {
    "enrolled": (34, 0),
    "mated_probes": (142, 0),
    "non_mated_probes": (10, 0),
    "dir": (1.0, 0.0),
    "true_reject_rate": (0.9, 1e-9),
    "per_comparison_far": (0.0020, 0.00005),
    "far_at_k33": (0.066, 0.0005),
    "independent_at_k33": (0.064, 0.0005),
    # README gives these as bounds ("tau <= 0.653"): the measured threshold truncated to 3 decimals
    "threshold_1to1": (0.653, 0.001),
    "threshold_1to33": (0.462, 0.001),
}


def figures(root: Path) -> dict:
    from facenet_keras.evaluation.protocols import open_set_report

    r = open_set_report(root, threshold=0.6, target_far=0.01)
    curve, cal = r["false_accept_vs_k"], r["calibrated"]
    k = curve["sizes"].index(33) if 33 in curve["sizes"] else None
    return {
        "enrolled": r["enrolled"],
        "mated_probes": r["mated_probes"],
        "non_mated_probes": r["non_mated_probes"],
        "dir": r["dir"],
        "rank1": r["rank1"],
        "true_reject_rate": r["true_reject_rate"],
        "failed_probes": r["failed_probes"],
        "per_comparison_far": curve["per_comparison_far"],
        "far_at_k33": curve["rate"][k] if k is not None else None,
        "independent_at_k33": curve["independent"][k] if k is not None else None,
        "gallery_size": cal["gallery_size"],
        "threshold_1to1": cal["threshold_1to1"],
        "threshold_1to33": cal["threshold_1toK"] if cal["gallery_size"] == 33 else None,
    }


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"no data at {args.root} (pass --root)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    got = figures(args.root)
    seconds = time.perf_counter() - t0
    print(f"open-set identification on {args.root} ({seconds:.0f} s)")
    print(f"{'figure':<22} {'measured':>10} {'README':>10}  check")
    ok = True
    for key, value in got.items():
        if key in README:
            expected, tol = README[key]
            good = value is not None and abs(value - expected) <= tol
            if key.startswith("threshold_"):
                good = value is not None and expected <= value < expected + tol
            ok &= good
            print(f"{key:<22} {_fmt(value):>10} {_fmt(expected):>10}  {'ok' if good else 'DIFFERS'}")
        else:
            print(f"{key:<22} {_fmt(value):>10}")
    if args.json:
        args.json.write_text(
            json.dumps({"measured": got, "readme": {k: v[0] for k, v in README.items()}, "seconds": seconds}, indent=2)
            + "\n"
        )
    print("all README figures reproduced" if ok else "SOME README FIGURES DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
