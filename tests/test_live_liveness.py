"""Liveness on the real clip and on generated attacks (tests/live_spoofs.py, seeds 0-2; the
thresholds were fixed on seeds 1000-1049)."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.live import liveness as lv

pytest.importorskip("av")

# What the performer does in the clip's second shot (2.84-7.0 s), read off the frames: turns to
# his right (3.2-4.4 s), back and to his left (4.6-5.6 s), to his right again (5.8-7.0 s). He does
# not blink in it, so the matching challenge has no blink.
MATCHING = lv.Challenge(
    (lv.Prompt("turn_right", 3.2, 4.4), lv.Prompt("turn_left", 4.6, 5.6), lv.Prompt("turn_right", 5.8, 7.0))
)


@pytest.fixture(scope="session")
def real_frames(shared_data):
    from facenet_keras.live.frames import read_frames

    frames, times, _ = read_frames(shared_data / "video" / "short_hamilton_clip.mp4", max_seconds=7.1)
    return frames, times


@pytest.fixture(scope="session")
def real(real_frames):
    return lv.measure_face(*real_frames)


@pytest.fixture(scope="session")
def photo_attacks(shared_data, detector):
    import live_spoofs

    photos = live_spoofs.attack_photos(shared_data)
    out = []
    for seed, bend in ((0, 0.0), (1, 1.8), (2, None)):  # flat, bent, as the seed draws it
        photo = live_spoofs.load_photo(photos[(7 * seed + 3) % len(photos)], detector)
        frames, times = live_spoofs.photo_attack(photo, seed, bend=bend)
        out.append((seed, lv.measure_face(frames, times, detector=detector)))
    return out


def test_real_clip_passes_the_passive_cues(real):
    result = lv.assess(real)
    assert result.live, result.reasons
    assert result.cues["face_seconds"] > 3.5  # the longest stretch of one face: the second shot
    assert any("3-D motion" in r for r in result.reasons)


def test_photo_attacks_fail_the_passive_cues(photo_attacks):
    for seed, m in photo_attacks:
        assert m.present.sum() > 0.8 * len(m.times), f"seed {seed}: the attack's face was not followed"
        result = lv.assess(m)
        assert not result.live, f"seed {seed}: a photo passed: {result.reasons}"
        assert "flat" in result.reasons[0]


def test_challenge_matching_the_clip_passes(real):
    result = lv.assess(real, MATCHING)
    assert result.live, result.reasons
    assert result.cues["challenge"]["met"] == 3


def test_random_challenges_fail_on_the_same_clip(real):
    results = [lv.assess(real, lv.Challenge.random(3, start=3.0, window=1.3, rng=seed)) for seed in range(30)]
    passed = [r for r in results if r.live]
    assert len(passed) <= 3  # a recording follows a random challenge only by luck
    assert not results[0].live and any("challenge failed" in r for r in results[0].reasons)


def test_replay_passes_passive_cues_but_not_a_challenge(real_frames):
    """A replayed recording shows a real head turning: the passive cues cannot stop it (said in
    README); a challenge drawn after the recording can."""
    import live_spoofs

    frames, times = real_frames
    keep = times >= 2.9
    shown, _ = live_spoofs.replay_attack(frames[keep], seed=0)
    m = lv.measure_face(shown, times[keep])
    assert lv.assess(m).live
    assert not lv.assess(m, lv.Challenge.random(3, start=3.0, window=1.3, rng=0)).live


def test_verify_with_liveness_refuses_a_photo(shared_data, tmp_path, capsys, detector):
    import live_spoofs

    from facenet_keras.cli import main
    from facenet_keras.live.frames import VideoWriter

    gallery = str(tmp_path / "g.sqlite")
    portrait = shared_data / "video" / "lin-manuel-miranda.png"
    assert main(["--gallery", gallery, "enroll", "lin", str(portrait)]) == 0
    frames, _ = live_spoofs.photo_attack(live_spoofs.load_photo(portrait, detector), seed=5, bend=0.0)
    clip = tmp_path / "held-up-photo.mp4"
    with VideoWriter(clip, live_spoofs.FPS, (frames.shape[2], frames.shape[1])) as w:
        for f in frames:
            w.write(f)
    capsys.readouterr()
    assert main(["--gallery", gallery, "verify", str(clip), "lin", "--liveness"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("REFUSED (liveness failed)") and "flat" in out
    # the real performance (its longest shot) passes liveness and matches
    assert (
        main(
            [
                "--gallery",
                gallery,
                "verify",
                str(shared_data / "video" / "short_hamilton_clip.mp4"),
                "lin",
                "--liveness",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("MATCH")


def test_spoof_model_hook(real, real_frames):
    """A user-supplied model's verdict is combined with the cues (a callable stands in for a file)."""
    frames, _ = real_frames
    says_spoof = lv.SpoofModel(lambda x: np.zeros(len(x)), threshold=0.5)
    score = lv._spoof_score(says_spoof, frames, real)
    result = lv.assess(real, spoof_model=says_spoof, spoof_score=score)
    assert not result.live and "anti-spoofing model" in result.reasons[0]
