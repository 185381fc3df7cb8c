"""``facenet-keras watch``: follow the faces of a video, camera or stream; and ``verify --liveness``.

Events go out as they happen (text lines, or JSON lines with ``--json``); the annotated video and
the events file are closed properly whatever happens, so a source that fails mid-way leaves a
valid, shorter video and every event up to the failure (then exit 2, with the reason).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import EXIT_BAD_INPUT, EXIT_NO_MATCH, EXIT_OK, gallery_option, profile_option


def register(sub) -> None:
    from facenet_keras.live.watch import WATCH_DEFAULTS

    p = sub.add_parser(
        "watch", help="follow faces in a video file, camera (0, /dev/video0) or stream URL: tracks, identities, events"
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="video file, camera number or device, or stream URL")
    p.add_argument("--annotate", metavar="OUT.mp4", help="write the video with boxes, track ids and names")
    p.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=argparse.SUPPRESS,
        metavar="EVENTS.jsonl",
        help="write one JSON line per event to EVENTS.jsonl (bare --json: JSON lines on stdout)",
    )
    p.add_argument(
        "--every",
        type=int,
        default=WATCH_DEFAULTS["every"],
        metavar="N",
        help=f"run detection on every Nth frame, track in between (default {WATCH_DEFAULTS['every']})",
    )
    p.add_argument("--max-seconds", type=float, default=None, metavar="S", help="stop after S seconds of video")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="distance threshold tau (default: the gallery's calibrated one, else the encoder's own)",
    )
    profile_option(p)
    gallery_option(p)
    p.set_defaults(func=cmd_watch)


class _AtomicText:
    """A text file written line by line into a 0600 temporary file, moved into place on close (also
    after an error: the lines so far are complete)."""

    def __init__(self, path: str):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"{path} is a folder; give a file name for the events")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o600)
        self._f = os.fdopen(fd, "w")

    def write_line(self, text: str) -> None:
        self._f.write(text + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
            os.replace(self._tmp, self.path)


def _source(value: str):
    return int(value) if value.isdigit() and not Path(value).exists() else value


def cmd_watch(args) -> int:
    from facenet_keras.live.frames import VideoError, VideoWriter, open_video
    from facenet_keras.live.watch import watch

    args.json = getattr(args, "json", False)
    if args.source is None and isinstance(args.json, str):  # "--json clip.mp4": the video, not a JSON file
        args.source, args.json = args.json, True
    if args.source is None:
        print("facenet-keras: error: watch needs a SOURCE (a video file, camera or stream URL)", file=sys.stderr)
        return EXIT_BAD_INPUT
    source = _source(args.source)
    gallery = None
    json_lines = args.json is True
    events_out = _AtomicText(args.json) if isinstance(args.json, str) else None
    writer = None
    bar = None
    tracks: dict[int, dict] = {}
    frames = 0
    start = time.perf_counter()
    last_time = 0.0
    error = None
    try:
        with open_video(source, max_seconds=args.max_seconds) as probe:  # fail early, before any output
            fps, size, total, live = probe.fps, (probe.width, probe.height), probe.frame_count, probe.live
        gallery = _open_gallery(args)
        if args.annotate:
            writer = VideoWriter(args.annotate, fps, size)
        if not live and not json_lines and sys.stderr.isatty():
            from tqdm.auto import tqdm

            expected = total if args.max_seconds is None else min(total or 1 << 30, int(args.max_seconds * fps))
            bar = tqdm(total=expected, unit="frame", desc="watching", file=sys.stderr)
        results = watch(
            source,
            gallery,
            every=args.every,
            threshold=args.threshold,
            max_seconds=args.max_seconds,
            model=getattr(args, "model", None),  # --profile (resolved by the command line's main)
        )
        try:
            for result in results:
                frames += 1
                last_time = result.time
                if writer is not None:
                    writer.write(_draw(result))
                for event in result.events:
                    _record(tracks, event)
                    line = json.dumps(event.to_dict())
                    if events_out is not None:
                        events_out.write_line(line)
                    if json_lines:
                        print(line, flush=True)
                    elif bar is None:
                        print(_event_text(event), flush=True)
                if bar is not None:
                    bar.update(1)
        except VideoError as exc:
            error = exc
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if events_out is not None:
            events_out.close()
        if gallery is not None:
            gallery.close()
    elapsed = time.perf_counter() - start
    summary = _summary(tracks)
    if json_lines:
        print(
            json.dumps(
                {
                    "summary": summary,
                    "frames": frames,
                    "seconds": round(last_time, 3),
                    "error": None if error is None else str(error),
                }
            )
        )
    else:
        speed = (last_time + 1 / fps) / elapsed if elapsed > 0 else 0.0
        print(
            f"watched {args.source}: {frames} frames ({last_time:.1f} s of video) in {elapsed:.1f} s "
            f"({speed:.2f}x real time), {len(tracks)} track(s)"
        )
        for line in _summary_table(summary):
            print(line)
        if writer is not None and writer.frames:
            print(f"annotated video written to {args.annotate} ({writer.frames} frames)")
        if events_out is not None:
            print(f"events written to {args.json}")
    if error is not None:
        print(f"facenet-keras: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _open_gallery(args):
    from facenet_keras.identity.gallery import FaceGallery

    gallery = FaceGallery(args.gallery, readonly=True)
    if len(gallery) == 0:
        print(
            f"note: the gallery {gallery.path} is empty: faces are tracked but nobody can be recognised "
            "(enrol people with 'facenet-keras enroll NAME PHOTO')",
            file=sys.stderr,
        )
    return gallery


def _draw(result):
    import numpy as np

    from facenet_keras.faces.annotate import annotate

    if not result.faces:
        return result.image
    known = [f.identity is not None for f in result.faces]
    gated = [f.gated is not None and f.identity is None for f in result.faces]
    boxes, labels = [f.box for f in result.faces], [f.label for f in result.faces]
    return np.asarray(annotate(result.image, boxes, labels, known, gated))


def _event_text(event) -> str:
    who = event.identity or ("not recognised" if event.status == "not recognised" else "")
    if event.kind == "appeared":
        return f"{event.time:7.2f} s  track {event.track} appeared"
    if event.kind == "identified":
        was = f" (was {event.previous})" if event.previous else ""
        return f"{event.time:7.2f} s  track {event.track} identified: {who}{was}"
    return f"{event.time:7.2f} s  track {event.track} left ({who or 'undecided'}, seen from {event.first_seen:.2f} s)"


def _record(tracks: dict, event) -> None:
    t = tracks.setdefault(
        event.track,
        {
            "track": event.track,
            "first": event.time,
            "last": event.time,
            "identity": None,
            "status": "pending",
            "settled": None,
        },
    )
    if event.kind == "identified":
        t["identity"], t["status"], t["settled"] = event.identity, event.status, event.time
    if event.kind == "left":
        t["last"] = event.time
        t["first"] = event.first_seen


def _summary(tracks: dict) -> list[dict]:
    """Per person (and "not recognised" / "undecided"): tracks, first and last seen, when identified."""
    people: dict[str, dict] = {}
    for t in tracks.values():
        key = t["identity"] or ("not recognised" if t["status"] == "not recognised" else "undecided")
        p = people.setdefault(
            key, {"who": key, "tracks": 0, "first_seen": t["first"], "last_seen": t["last"], "identified_at": None}
        )
        p["tracks"] += 1
        p["first_seen"] = round(min(p["first_seen"], t["first"]), 3)
        p["last_seen"] = round(max(p["last_seen"], t["last"]), 3)
        if t["identity"] and t["settled"] is not None:
            p["identified_at"] = round(min(p["identified_at"] or 1e9, t["settled"]), 3)
    order = sorted(people.values(), key=lambda p: (p["who"] in ("not recognised", "undecided"), p["first_seen"]))
    return order


def _summary_table(summary: list[dict]) -> list[str]:
    if not summary:
        return ["nobody was seen"]
    width = max(10, *(len(p["who"]) for p in summary))
    lines = [f"{'who':<{width}}  tracks  first seen  last seen  identified at"]
    for p in summary:
        at = f"{p['identified_at']:.2f} s" if p["identified_at"] is not None else "-"
        lines.append(
            f"{p['who']:<{width}}  {p['tracks']:>6}  {p['first_seen']:>8.2f} s  {p['last_seen']:>7.2f} s  {at:>13}"
        )
    return lines


# ------------------------------------------------------------------------------ verify --liveness
def cmd_verify_live(args) -> int:
    """``verify CLIP NAME --liveness``: the clip's face must be live, then match NAME (exit 0), else 1."""
    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.live.verify import verify_clip

    from . import emit

    with FaceGallery(args.gallery, readonly=True) as g:
        v = verify_clip(args.photo, args.name, g, args.threshold, model=args.model)
    lv = v.liveness
    if v.match:
        verdict = "MATCH"
    elif v.distance_match:
        verdict = "REFUSED (liveness failed)"
    else:
        verdict = "NO MATCH"
    lines = [
        (
            f"{verdict}: {args.photo} vs {args.name!r}: distance {v.distance:.3f} "
            f"{'<=' if v.distance_match else '>'} threshold {v.threshold:.3f}; "
            f"liveness {'passed' if lv.live else 'FAILED'} (score {lv.score:.2f})"
        )
    ]
    lines += [f"  {r}" for r in lv.reasons]
    emit(args, {"clip": args.photo, **v.to_dict()}, lines)
    return EXIT_OK if v.match else EXIT_NO_MATCH
