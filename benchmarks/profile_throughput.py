"""Encoder and pipeline throughput per profile: SFace alone, fast (dlib's ResNet) and accurate (both).

Encoders only (chips in, embeddings out, detection excluded), at batch 32 through ``encode_chips``:
chips/s of SFace (112x112 ArcFace chips) and of dlib's ResNet (150x150 chips), and faces/s of the
accurate profile's encoders, which run both on their own chip of each face, so its time per face is
the sum of the two. The target of the accurate profile: its encoders within 2x of fast's time per
face. Beside them, the ceiling: each network's multiply-adds per chip (counted on the Keras model)
and the cores' fp32 rate on a large matrix product, timed in the same interleaving, so the line
"SFace would need" says what fraction of that rate SFace must sustain to match dlib's chips/s,
which is what 2x asks (above 100%: no fp32 implementation on these cores can). Then photos/s of
the whole pipeline (MTCNN, quality gate, chips, mirrored-chip averaging), for the fast profile, for
SFace through the same pipeline (as ``--model`` SFace would run it) and, where this checkout has
the profiles (``facenet_keras.faces.profiles``), for the accurate profile; without them that line
says it was not measured. Each figure is the median of ``--repeats`` runs interleaved across the
jobs after a warm-up, so a load change on a shared machine hits them alike; the load average is
printed beside them. Chips are random pixels (a dense convnet's time does not depend on the
content); the photos are those of ``benchmarks/pipeline_throughput.py``.

Run: ``python benchmarks/profile_throughput.py [--chips 128] [--repeats 7] [--photos 20]``;
``--quick`` is a seconds-long smoke run (``tests/test_profile_throughput.py`` runs it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
BATCH = 32
MATMUL = 2048  # the square fp32 product that measures the cores' rate (large enough to be compute bound)


def multiply_adds(model) -> int:
    """Multiply-adds of one chip through ``model``'s convolutions and dense layers (element-wise
    layers, pooling and normalisation left out: they are a few percent of either network)."""
    total = 0
    for layer in model._flatten_layers(include_self=False):
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        out = tuple(layer.output.shape[1:])
        kernel = tuple(layer.kernel.shape)
        if kind == "Dense":  # kernel (in, out), applied at every leading position
            total += int(np.prod(out[:-1], dtype=np.int64)) * kernel[0] * kernel[1]
        else:  # kernel (kh, kw, in / groups, out), or depthwise (kh, kw, in, multiplier): per output pixel
            total += out[0] * out[1] * int(np.prod(kernel))
    return int(total)


def _matmul_job():
    """One timed fp32 product of two MATMUL x MATMUL matrices through TensorFlow (oneDNN as the
    encoders use it)."""
    import tensorflow as tf

    a = tf.random.normal((MATMUL, MATMUL), seed=0)
    b = tf.random.normal((MATMUL, MATMUL), seed=1)
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    return lambda: product().numpy()


def _median_rates(jobs: dict, items: dict, repeats: int) -> dict[str, float]:
    """Items per second of each ``jobs[name]()``: the median of ``repeats`` interleaved timed runs
    after one warm-up run each."""
    for job in jobs.values():
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            t0 = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - t0)
    return {name: items[name] / float(np.median(t)) for name, t in times.items()}


def encoder_rates(n_chips: int, repeats: int) -> dict[str, float]:
    """Chips/s of SFace and dlib's ResNet at batch 32, and faces/s of the two together."""
    from facenet_keras.models.encoder import encode_chips, load_encoder
    from facenet_keras.models.sface import load_sface

    rng = np.random.default_rng(0)
    dlib, sface = load_encoder(), load_sface()
    dlib_chips = rng.integers(0, 256, (n_chips, 150, 150, 3), dtype=np.uint8)
    sface_chips = rng.integers(0, 256, (n_chips, 112, 112, 3), dtype=np.uint8)
    jobs = {
        "sface": lambda: encode_chips(sface_chips, sface, batch_size=BATCH),
        "fast": lambda: encode_chips(dlib_chips, dlib, batch_size=BATCH),
        "matmul": _matmul_job(),
    }
    rates = _median_rates(jobs, {"sface": n_chips, "fast": n_chips, "matmul": 1}, repeats)
    rates["accurate"] = 1.0 / (1.0 / rates["fast"] + 1.0 / rates["sface"])  # both encoders per face
    rates["ratio"] = rates["fast"] / rates["accurate"]  # accurate's time per face over fast's
    rates["sface_madds"], rates["fast_madds"] = float(multiply_adds(sface)), float(multiply_adds(dlib))
    rates["peak_gmacs"] = rates.pop("matmul") * MATMUL**3 / 1e9
    rates["fast_gmacs"] = rates["fast"] * rates["fast_madds"] / 1e9
    rates["sface_gmacs"] = rates["sface"] * rates["sface_madds"] / 1e9
    # 2x means SFace's time per chip <= dlib's: SFace at dlib's chips/s
    rates["needed_gmacs"] = rates["fast"] * rates["sface_madds"] / 1e9
    return rates


def _accurate_pipeline():
    """The accurate profile's pipeline, or None where this checkout has no profiles."""
    try:
        from facenet_keras.faces.profiles import get_profile
    except ImportError:
        return None
    from facenet_keras.faces.pipeline import pipeline_for

    return pipeline_for(get_profile("accurate"))


def pipeline_rates(n_photos: int, repeats: int) -> tuple[dict[str, float], int]:
    """Photos/s of the whole pipeline for the fast profile, SFace and (where it exists) the
    accurate profile, on the same photos."""
    from pipeline_throughput import benchmark_photos

    from facenet_keras.faces.pipeline import FacePipeline
    from facenet_keras.models.sface import load_sface

    photos = benchmark_photos(n_photos, 512)
    pipes = {"fast": FacePipeline(None), "sface": FacePipeline(load_sface()), "accurate": _accurate_pipeline()}
    jobs = {name: (lambda p=p: p.encode_batch(photos, progress=False)) for name, p in pipes.items() if p is not None}
    return _median_rates(jobs, dict.fromkeys(jobs, len(photos)), repeats), len(photos)


def report(enc: dict[str, float], pipe: dict[str, float], n_photos: int, loads: tuple) -> list[str]:
    """The figures as printed lines."""
    return [
        f"{os.cpu_count()} CPU cores; load average {loads[0]:.2f} before, {loads[1]:.2f} after",
        f"encoders at batch {BATCH}, SFace in passes of 8 (chips in, embeddings out):",
        f"  SFace alone             {enc['sface']:8.1f} chips/s",
        f"  fast (dlib ResNet)      {enc['fast']:8.1f} chips/s",
        f"  accurate (dlib + SFace) {enc['accurate']:8.1f} faces/s",
        f"  accurate / fast time per face: {enc['ratio']:.2f}x (target <= 2x)",
        f"ceiling: fp32 matrix product {MATMUL}x{MATMUL} on these cores {enc['peak_gmacs']:.1f} G multiply-adds/s",
        f"  SFace  {enc['sface_madds'] / 1e6:6.0f} M multiply-adds per chip, running at {enc['sface_gmacs']:6.1f} G/s"
        f" ({enc['sface_gmacs'] / enc['peak_gmacs']:.0%} of it)",
        f"  dlib   {enc['fast_madds'] / 1e6:6.0f} M multiply-adds per chip, running at {enc['fast_gmacs']:6.1f} G/s"
        f" ({enc['fast_gmacs'] / enc['peak_gmacs']:.0%} of it)",
        f"  SFace would need {enc['needed_gmacs']:.1f} G/s ({enc['needed_gmacs'] / enc['peak_gmacs']:.0%} of it)"
        " to match dlib's chips/s, which is what 2x asks",
        f"whole pipeline (detection, gate, chips, mirrored averaging), {n_photos} photos:",
        f"  fast                    {pipe['fast']:8.2f} photos/s",
        f"  SFace (--model)         {pipe['sface']:8.2f} photos/s",
        f"  accurate                {pipe['accurate']:8.2f} photos/s"
        if "accurate" in pipe
        else "  accurate                not measured: this checkout has no profiles (facenet_keras.faces.profiles)",
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=128, help="chips per timed run of each encoder")
    parser.add_argument("--photos", type=int, default=20, help="photos per timed pipeline run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 8 chips, 2 photos, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.chips, args.photos, args.repeats = 8, 2, 1
    before = os.getloadavg()[0]
    enc = encoder_rates(args.chips, args.repeats)
    pipe, n_photos = pipeline_rates(args.photos, args.repeats)
    lines = report(enc, pipe, n_photos, (before, os.getloadavg()[0]))
    print("\n".join(lines))
    return {"encoders": enc, "pipeline": pipe, "photos": n_photos, "lines": lines}


if __name__ == "__main__":
    main()
