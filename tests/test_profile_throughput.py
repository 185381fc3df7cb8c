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
    assert f"{enc['ratio']:.2f}x" in out and out.strip().splitlines() == result["lines"]
