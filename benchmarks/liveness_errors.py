"""Liveness error rates in the ISO/IEC 30107-3 terms, at the package's fixed thresholds.

- APCER (attack presentation classification error rate): the share of attacks accepted as live.
  Photo attacks: >= 50 generated clips (tests/live_spoofs.py: a print of a photo from
  ../shared/data/faces, hand-held in perspective, half of them bent, blurred, JPEG re-encoded),
  seeds 0..N-1, with the passive cues. Replay attacks: the real clip's second shot on a phone
  screen, passive cues alone and with a random challenge.
- BPCER (bona fide presentation classification error rate): the share of real presentations
  rejected: the real clip's second shot (2.9-7.0 s) cut into 2 s windows every 0.5 s (overlapping:
  one 10 s clip of one performer gives few, dependent bona fide samples).

``--calibrate`` prints the cue values on seeds 1000-1049 (never the tests' seeds 0-5 or the
figures' seeds) from which the thresholds in facenet_keras/live/liveness.py were fixed.

Run: ``.venv/bin/python benchmarks/liveness_errors.py [--attacks 60] [--calibrate]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the seeded attack generators live with the tests
SHARED = Path(os.environ.get("FACENET_KERAS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def photo_attacks(seeds, detector):
    import live_spoofs

    from facenet_keras.live import liveness as lv

    photos = live_spoofs.attack_photos(SHARED)
    for seed in seeds:
        photo = live_spoofs.load_photo(photos[(7 * seed + 3) % len(photos)], detector)
        frames, times = live_spoofs.photo_attack(photo, seed)
        yield seed, lv.measure_face(frames, times, detector=detector)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacks", type=int, default=60, help="photo attacks (seeds 0..N-1)")
    ap.add_argument("--replays", type=int, default=10, help="replay attacks (seeds 0..N-1)")
    ap.add_argument("--calibrate", action="store_true", help="print cue values on seeds 1000-1049 instead")
    args = ap.parse_args()
    import live_spoofs

    from facenet_keras.faces.detection import FaceDetector
    from facenet_keras.live import liveness as lv
    from facenet_keras.live.frames import read_frames

    detector = FaceDetector(min_face_size=40)
    frames, times, _ = read_frames(SHARED / "video" / "short_hamilton_clip.mp4", max_seconds=7.1)
    shot = times >= 2.9
    real = lv.measure_face(frames[shot], times[shot], detector=detector)
    windows = [real.window(s, s + 2.0) for s in np.arange(2.9, 7.0 - 2.0 + 1e-6, 0.5)]

    if args.calibrate:
        print(
            "bona fide windows: parallax",
            [round(w.parallax[0], 3) for w in windows],
            "blinks",
            [len(w.blinks) for w in windows],
        )
        values = [
            (seed, m.parallax[0], len(m.blinks), int(m.present.sum()))
            for seed, m in photo_attacks(range(1000, 1050), detector)
        ]
        followed = [v for v in values if v[3] >= 45]
        par = np.array([v[1] for v in followed])
        print(
            f"photo attacks (seeds 1000-1049, {len(followed)} with the face followed): parallax "
            f"max {par.max():.3f}, 99th pct {np.percentile(par, 99):.3f}, median {np.median(par):.3f}; "
            f"with a 'blink': {sum(v[2] > 0 for v in followed)}"
        )
        low = min(w.parallax[0] for w in windows)
        inside = par.max() < lv.PARALLAX_THRESHOLD <= low
        print(
            f"PARALLAX_THRESHOLD = {lv.PARALLAX_THRESHOLD}: attacks' max {par.max():.3f}, bona fide windows' min "
            f"{low:.3f}: {'between them' if inside else 'NOT between them: refit it'}"
        )
        return

    # ---- photo attacks
    accepted, no_face, n = 0, 0, 0
    worst = 0.0
    for seed, m in photo_attacks(range(args.attacks), detector):
        r = lv.assess(m)
        n += 1
        accepted += r.live
        no_face += r.cues.get("face_seconds", 0) < lv.MIN_SECONDS
        if "parallax" in r.cues:
            worst = max(worst, r.cues["parallax"])
        if r.live:
            print(f"  photo attack seed {seed} accepted: {r.reasons}")
    print(
        f"photo attacks: APCER {accepted / n:.1%} ({accepted}/{n}); of them {no_face} rejected because no "
        f"face was followed for {lv.MIN_SECONDS} s; highest parallax score {worst:.3f} "
        f"(threshold {lv.PARALLAX_THRESHOLD})"
    )

    # ---- replay attacks
    passive = with_challenge = 0
    for seed in range(args.replays):
        shown, _ = live_spoofs.replay_attack(frames[shot], seed)
        m = lv.measure_face(shown, times[shot], detector=detector)
        passive += lv.assess(m).live
        with_challenge += lv.assess(m, lv.Challenge.random(3, start=3.0, window=1.3, rng=seed)).live
    print(
        f"replay attacks: APCER {passive / args.replays:.0%} ({passive}/{args.replays}) with the passive cues "
        f"alone; {with_challenge / args.replays:.0%} ({with_challenge}/{args.replays}) with a random "
        "3-prompt challenge"
    )

    # ---- bona fide
    rejected = [w for w in windows if not lv.assess(w).live]
    print(
        f"bona fide: BPCER {len(rejected) / len(windows):.0%} ({len(rejected)}/{len(windows)} overlapping 2 s "
        f"windows of one 4 s shot of one performer: few, dependent samples)"
    )
    rand = [lv.assess(real, lv.Challenge.random(3, start=3.0, window=1.3, rng=s)).live for s in range(100)]
    print(
        f"the real shot against 100 random challenges it did not follow: {sum(rand)} accepted "
        "(what a replayed recording achieves by luck)"
    )


if __name__ == "__main__":
    main()
