"""Encoder throughput: chips/s of our Keras dlib ResNet at batch 1 and 32, vs dlib-bin itself.

Usage::

    python benchmarks/encode_throughput.py [--chips 96] [--dlib-chips 32] [--repeats 3]

Uses the 150x150 chips in ``../shared/data/faces/dlib_john_*`` (or $FACENET_KERAS_SHARED_DATA)
when present, random chips otherwise (throughput does not depend on the content). dlib-bin is
the reference (``compute_face_descriptor`` on a list of chips, its batched path); it is only
imported here, never by the package. Prints chips/s for each and the ratios. Each figure is the
best of ``--repeats`` timed runs after one warm-up run, so it reflects the steady state.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_chips(n: int) -> tuple[np.ndarray, str]:
    """(n, 150, 150, 3) uint8 chips: dlib's John chips tiled, or random ones if absent."""
    roots = [os.environ.get("FACENET_KERAS_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for root in roots:
        if root and (Path(root) / "faces").is_dir():
            paths = sorted(Path(root).glob("faces/dlib_john_*/*.jpg"))
            if paths:
                from PIL import Image

                chips = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
                return np.resize(chips, (n, *chips.shape[1:])), f"{len(paths)} real chips, tiled"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 150, 150, 3), dtype=np.uint8), "random chips"


def best_rate(fn, n: int, repeats: int) -> float:
    """Chips per second of ``fn()`` (which encodes n chips): best of ``repeats`` after a warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / min(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=96, help="chips per run at batch 32")
    parser.add_argument("--single", type=int, default=32, help="chips per run at batch 1")
    parser.add_argument("--dlib-chips", type=int, default=32, help="chips per dlib run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from facenet_keras.models.encoder import encode_chips, load_encoder

    chips, source = load_chips(max(args.chips, args.single, args.dlib_chips))
    print(
        f"input: {source}; cpu cores visible: {os.cpu_count()}; "
        f"load average: {os.getloadavg()[0]:.2f} (other processes share the CPU)"
    )
    t0 = time.perf_counter()
    model = load_encoder()
    print(f"load_encoder(): {time.perf_counter() - t0:.2f} s")

    rates: dict[str, float] = {}
    x1 = chips[: args.single]
    rates["keras_batch1"] = best_rate(
        lambda: [encode_chips(c, model=model, batch_size=1) for c in x1], len(x1), args.repeats
    )
    x32 = chips[: args.chips]
    rates["keras_batch32"] = best_rate(lambda: encode_chips(x32, model=model, batch_size=32), len(x32), args.repeats)
    try:
        import dlib

        from facenet_keras.weights import dlib_resnet_dat_path

        net = dlib.face_recognition_model_v1(str(dlib_resnet_dat_path()))
        xd = list(chips[: args.dlib_chips])
        rates["dlib_batched"] = best_rate(lambda: net.compute_face_descriptor(xd), len(xd), max(1, args.repeats - 1))
    except ImportError:
        print("dlib-bin is not installed: no reference figure (pip install dlib-bin)")

    for name, rate in rates.items():
        print(f"{name:>14}: {rate:8.1f} chips/s")
    if "dlib_batched" in rates:
        for name in ("keras_batch1", "keras_batch32"):
            print(f"{name} / dlib: {rates[name] / rates['dlib_batched']:.1f}x")
    return rates


if __name__ == "__main__":
    main()
