"""The headline figure, end to end: LFW fold 1 from full photos (detection, alignment, encoder,
10-fold threshold), through the command line a user runs. About a minute on 2 cores."""
from __future__ import annotations

import json

import pytest

from facenet_keras.cli import main


@pytest.mark.slow
def test_lfw_fold1_verification_accuracy(shared_data, tmp_path, capsys):
    out = tmp_path / "lfw.json"
    code = main(["evaluate", str(shared_data / "lfw-dev" / "pairs.csv"), "--root", str(shared_data / "lfw-dev"),
                 "--json", str(out)])
    capsys.readouterr()
    report = json.loads(out.read_text())
    print({k: report[k] for k in ("accuracy", "accuracy_std", "threshold", "auc", "failed")})
    assert code == 0
    assert report["pairs"] == 600 and report["failed"] == 0
    assert report["accuracy"] >= 0.990
    assert report["auc"] >= 0.998
    assert 0.5 <= report["threshold"] <= 0.7  # on the scale DEFAULT_THRESHOLD assumes
