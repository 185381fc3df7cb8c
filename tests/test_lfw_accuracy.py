"""The headline figure, end to end: LFW fold 1 from full photos (detection, alignment, encoder,
10-fold threshold), through the command line a user runs. The session's private, empty
FACENET_KERAS_HOME means all 807 photos are really detected, aligned and encoded (about 95 s of CPU
time). The bounds are README's figures (99.50%, AUC 0.9995, threshold 0.604) less one pair."""

from __future__ import annotations

import json

import pytest

from facenet_keras.cli import main


@pytest.mark.slow
def test_lfw_fold1_verification_accuracy(shared_data, tmp_path, capsys):
    out = tmp_path / "lfw.json"
    code = main(
        [
            "evaluate",
            str(shared_data / "lfw-dev" / "pairs.csv"),
            "--root",
            str(shared_data / "lfw-dev"),
            "--json",
            str(out),
        ]
    )
    capsys.readouterr()
    report = json.loads(out.read_text())
    print({k: report[k] for k in ("accuracy", "accuracy_std", "threshold", "auc", "failed")})
    assert code == 0
    assert report["pairs"] == 600 and report["failed"] == 0
    assert report["accuracy"] >= 0.995 - 1 / 600 - 1e-9  # README: 99.50%; one pair is noise
    assert report["auc"] >= 0.999  # README: 0.9995
    assert abs(report["threshold"] - 0.604) <= 0.01  # README: 0.604, where DEFAULT_THRESHOLD sits
