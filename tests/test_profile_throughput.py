"""``benchmarks/profile_throughput.py --quick``: its parser, timing and printing run (the figures
themselves are the benchmark's business, not a unit test's), and the accurate figures follow from
the two encoders' (the accurate profile runs both per face)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from facenet_keras.weights import MissingWeightsError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_throughput.py"


def test_quick_run_prints_every_figure(capsys):
    from facenet_keras.models.sface import sface_onnx_path

    try:
        sface_onnx_path()
    except MissingWeightsError as exc:
        pytest.skip(str(exc))
    spec = importlib.util.spec_from_file_location("profile_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick"])
    out = capsys.readouterr().out
    enc, pipe = result["encoders"], result["pipeline"]
    assert all(enc[k] > 0 for k in ("sface", "fast", "accurate")) and all(pipe[k] > 0 for k in ("fast", "sface"))
    # time per face of the accurate profile = dlib's + SFace's
    assert 1 / enc["accurate"] == pytest.approx(1 / enc["fast"] + 1 / enc["sface"])
    assert enc["ratio"] == pytest.approx(enc["fast"] / enc["accurate"]) and enc["ratio"] > 1
    for label in ("SFace alone", "fast (dlib ResNet)", "accurate (dlib + SFace)", "accurate / fast", "photos/s"):
        assert label in out
    # the ceiling: SFace at dlib's chips/s is what 2x asks; the networks' sizes as counted
    assert enc["needed_gmacs"] == pytest.approx(enc["fast"] * enc["sface_madds"] / 1e9)
    assert 570e6 < enc["sface_madds"] < 580e6 and 265e6 < enc["fast_madds"] < 275e6
    assert enc["peak_gmacs"] > 0 and f"{enc['needed_gmacs']:.1f} G/s" in out
    assert f"{enc['ratio']:.2f}x" in out and out.strip().splitlines() == result["lines"]


def test_multiply_adds_counts_each_layer_kind():
    """The counter against sums done by hand on a small model (a wrong formula for any kind shows)."""
    import keras

    spec = importlib.util.spec_from_file_location("profile_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)  # 8x8x8: 64 * 9 * 3 * 8
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)  # 8x8x16: 64 * 9 * 8 * 2
    x = keras.layers.Dense(4)(x)  # at each of 64 positions: 16 * 4
    x = keras.layers.Dense(5)(keras.layers.Flatten()(x))  # 256 * 5
    model = keras.Model(inputs, x)
    assert module.multiply_adds(model) == 64 * 9 * 3 * 8 + 64 * 9 * 8 * 2 + 64 * 16 * 4 + 256 * 5
