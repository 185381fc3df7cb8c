"""What users read: a liveness refusal states the condition that failed, in its own words, and no
message (nor anything else in the package) names a tracker's issue number."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from facenet_keras.live import liveness as lv

ROOT = Path(__file__).resolve().parents[1]


def _followed(frames: int, seconds: float, of: int | None = None) -> lv.FaceMeasurements:
    """One face seen on ``frames`` frames spread over ``seconds``, in a clip of ``of`` frames."""
    total = of or frames
    times = np.linspace(0.0, seconds, total)
    points = np.full((total, 68, 2), np.nan)
    points[:frames] = np.random.default_rng(0).uniform(100, 200, (frames, 68, 2))
    if frames < total:  # the face on the first and last frames, so its span is the whole clip
        points[-1] = points[0]
        points[frames - 1] = np.nan
    return lv.FaceMeasurements(times, points)


@pytest.mark.parametrize(
    "frames, seconds, total, says, not_says",
    [
        (8, 3.0, 8, "found in only 8 of 8 frames: need at least 10 frames", "followed for only"),
        (6, 3.0, 90, "found in only 6 of 90 frames: need at least 10 frames", "followed for only"),
        (30, 1.0, 30, "followed for only 1.0 s: need at least 1.5 s", "frames: need"),
    ],
)
def test_a_liveness_refusal_names_the_condition_that_failed(frames, seconds, total, says, not_says):
    result = lv.assess(_followed(frames, seconds, total))
    assert not result.live and result.score == 0.0
    assert len(result.reasons) == 1 and says in result.reasons[0] and not_says not in result.reasons[0], result


def test_both_conditions_failing_are_both_named():
    result = lv.assess(_followed(5, 0.5))
    assert [r.split(":")[0] for r in result.reasons] == [
        "one face was found in only 5 of 5 frames",
        "one face was followed for only 0.5 s",
    ]


def test_no_issue_numbers_in_the_package():
    pattern = re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE)
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for package in ("facenet_keras", "style_transfer")
        for path in sorted((ROOT / package).rglob("*"))
        if path.suffix in (".py", ".js", ".html", ".css")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
