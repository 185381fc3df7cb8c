"""The watch loop: frames -> faces detected every Nth frame -> tracks -> identities -> events.

Detection (MTCNN, the package's :class:`~facenet_keras.detection.FaceDetector`) runs on every
``every``-th frame (the key frames), on frames downscaled to ``max_side``; faces smaller than
``min_face_size`` are not looked for (too small to recognise, and they make the detector's image
pyramid, its main cost, larger). Between two key frames a track's box is interpolated, so the
results lag the source by ``every - 1`` frames (a sixth of a second at the defaults) and memory
holds at most ``every`` frames. Tracks are linked by :class:`~.tracking.Tracker`; each track is
encoded only on its best frames and its identity voted (:class:`~.tracks.TrackIdentity`).

Events: ``appeared`` (a new track), ``identified`` (its answer was reached or changed; identity
None means "not recognised"), ``left`` (the track ended; time = when it was last seen).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from facenet_keras.live.frames import Frame, VideoError, open_video
from facenet_keras.live.tracking import Tracker, frame_signature, scene_changed
from facenet_keras.live.tracks import PENDING, TrackIdentity, Vote

__all__ = ["WATCH_DEFAULTS", "Event", "FaceResult", "FrameResult", "watch"]

#: detect every 5th frame (about 6 detections a second at 30 fps); faces from 40 px; frames
#: downscaled to 640 px for detection (see benchmarks/video_throughput.py for the measurements).
WATCH_DEFAULTS = {"every": 5, "min_face_size": 40, "max_side": 640, "max_missed": 3}


@dataclass(frozen=True)
class Event:
    """Something that happened to a track: ``kind`` is appeared / identified / left; ``time`` in
    seconds from the first frame; ``frame`` the frame index it was noticed at."""

    kind: str
    time: float
    frame: int
    track: int
    identity: str | None = None
    status: str | None = None
    distance: float | None = None
    votes: int | None = None
    first_seen: float | None = None
    previous: str | None = None
    gated: str | None = None  # why the quality gate turned the track's face away (appeared / left)

    def to_dict(self) -> dict:
        out = {"event": self.kind, "time": round(self.time, 3), "frame": self.frame, "track": self.track}
        if self.kind != "appeared":
            out["identity"] = self.identity
            out["status"] = self.status
        if self.distance is not None:
            out["distance"] = round(self.distance, 4)
        if self.votes is not None:
            out["votes"] = self.votes
        if self.first_seen is not None:
            out["first_seen"] = round(self.first_seen, 3)
        if self.gated is not None:
            out["gated"] = self.gated
        if self.kind == "identified" and self.previous is not None:
            out["previous"] = self.previous
        return out


@dataclass(frozen=True)
class FaceResult:
    """One tracked face in one frame. ``detected`` is False where the box was interpolated between
    key frames. ``status``: pending / identified / not recognised; ``settled_at``: since when."""

    track: int
    box: np.ndarray
    identity: str | None
    status: str
    settled_at: float | None
    detected: bool
    gated: str | None = None  # why the quality gate turned the track's latest face away (never named then)

    @property
    def label(self) -> str:
        who = "..." if self.status == PENDING else (self.identity or "?")
        if self.gated is not None and self.identity is None:
            who = f"({self.gated})"
        return f"#{self.track} {who}"


@dataclass
class FrameResult:
    """One frame's answer: its faces and the events noticed on it; ``image`` (H, W, 3) uint8."""

    index: int
    time: float
    image: np.ndarray = field(repr=False)
    faces: list[FaceResult]
    events: list[Event]
    key: bool  # detection ran on this frame


@dataclass
class _State:
    """What a key frame left for the frames after it: each track's box and answer."""

    time: float
    boxes: dict[int, np.ndarray]
    answers: dict[int, tuple[str | None, str, float | None]]


def watch(
    source,
    gallery=None,
    *,
    every: int = WATCH_DEFAULTS["every"],
    threshold: float | None = None,
    max_seconds: float | None = None,
    min_face_size: float = WATCH_DEFAULTS["min_face_size"],
    max_side: int = WATCH_DEFAULTS["max_side"],
    max_missed: int = WATCH_DEFAULTS["max_missed"],
    model=None,
    detector=None,
) -> Iterator[FrameResult]:
    """Follow the faces of a video file, camera or stream; yields a :class:`FrameResult` per frame.

    ``source``: a path, a camera (``0`` or ``"/dev/video0"``), a stream URL, or an iterable of
    :class:`~.frames.Frame`. ``gallery``: a :class:`~facenet_keras.gallery.FaceGallery` to recognise
    against (None: track only). A source that fails mid-way first yields the frames read so far
    (their tracks closed with ``left`` events), then raises :class:`~.frames.VideoError`.
    """
    from facenet_keras.faces.detection import FaceDetector
    from facenet_keras.faces.pipeline import pipeline_for
    from facenet_keras.identity.rules import check_gallery_space, encoder_for, resolve_threshold

    if int(every) != every or every < 1:
        raise ValueError(f"every must be a positive whole number of frames, got {every!r}")
    every = int(every)
    detector = detector or FaceDetector(min_face_size=min_face_size, max_side=max_side)
    pipe = pipeline_for(encoder_for(gallery, model), detector=detector)  # the encoder's own chips, the one quality gate
    if gallery is not None:
        check_gallery_space(gallery, pipe)  # never compare faces across embedding spaces
    tau = resolve_threshold(threshold, gallery, pipe) if gallery is not None else None
    if gallery is not None and len(gallery) == 0:
        gallery = None
    if isinstance(source, (str, int)) or hasattr(source, "__fspath__"):
        video = open_video(source, max_seconds=max_seconds)
    else:
        video = None
    frames = iter(video) if video is not None else iter(source)
    loop = _Loop(pipe, gallery, tau, every, max_missed)
    try:
        pending: list[Frame] = []
        last: Frame | None = None
        error: VideoError | None = None
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except VideoError as exc:
                error = exc
                break
            last = frame
            if frame.index % every == 0:
                yield from loop.key_frame(frame, pending)
                pending = []
            else:
                pending.append(frame)
        if pending:  # the last frames: detect on the very last one so they close like the others
            yield from loop.key_frame(pending[-1], pending[:-1], final=True)
        elif last is not None:
            loop.close_last()
        yield from loop.flush()
        if error is not None:
            raise error
    finally:
        if video is not None:
            video.close()


class _Loop:
    """The state of one watch: tracker, identities, the previous key frame."""

    def __init__(self, pipe, gallery, tau, every, max_missed):
        self.pipe, self.gallery, self.tau = pipe, gallery, tau
        self.gated: dict[int, str | None] = {}  # each track's latest gate reason
        self.tracker = Tracker(max_missed=max_missed)
        self.ids: dict[int, TrackIdentity] = {}
        self.first_seen: dict[int, float] = {}
        self.last_seen: dict[int, float] = {}
        self.prev: _State | None = None
        self.held: FrameResult | None = None  # the last key frame's result, yielded one step late
        self.signature: np.ndarray | None = None

    # ------------------------------------------------------------------ one key frame
    def key_frame(self, frame: Frame, between: list[Frame], final: bool = False) -> Iterator[FrameResult]:
        image = frame.image
        events: list[Event] = []
        signature = frame_signature(image)
        if self.signature is not None and scene_changed(self.signature, signature):
            # a cut: no face continues into another shot (its box may overlap someone else's)
            events += [self._left(t.id, frame.index) for t in self.tracker.finish()]
            self.prev = None
        self.signature = signature
        dets = self.pipe.detect(image)  # each judged by the quality gate
        boxes = np.array([d.box for d in dets], np.float64).reshape(-1, 4)
        usable = np.array([d.gated is None for d in dets], bool)
        quality = np.array([d.quality.rank() if d.gated is None else 0.0 for d in dets])
        # which faces to encode: where boxes alone are ambiguous, and each track's better frames;
        # never a face the gate turned away (it is tracked, drawn grey, never named)
        need = self.tracker.ambiguous(boxes, frame.time) if self.gallery is not None else np.zeros(len(dets), bool)
        if self.gallery is not None:
            for i, tid in enumerate(self.tracker.likely_tracks(boxes, frame.time)):
                ident = self.ids.get(int(tid))
                need[i] |= (
                    ident.wants(quality[i], frame.time)
                    if ident is not None
                    else quality[i] >= TrackIdentity.min_quality
                )
        need &= usable
        embeddings = None
        if need.any():
            idx = np.flatnonzero(need)
            emb = self.pipe.embed(self.pipe.chips(image, [dets[i] for i in idx]))
            embeddings = np.full((len(dets), emb.shape[1]), np.nan)
            embeddings[idx] = emb
        track_ids, ended = self.tracker.update(boxes, frame.time, embeddings)
        for i, tid in enumerate(track_ids):
            self.gated[tid] = dets[i].gated
            if tid not in self.ids:
                self.ids[tid] = TrackIdentity()
                self.first_seen[tid] = frame.time
                events.append(Event("appeared", frame.time, frame.index, tid, gated=self.gated[tid]))
            self.last_seen[tid] = frame.time
        if embeddings is not None:
            matches = self.gallery.search(np.nan_to_num(embeddings))
            for i, tid in enumerate(track_ids):
                if not need[i]:
                    continue
                m = matches[i]
                name = m.identity if m.distance <= self.tau else None
                ident = self.ids[tid]
                before = ident.identity if ident.status != PENDING else None
                if ident.add(Vote(frame.time, float(quality[i]), name, float(m.distance), m.identity)):
                    events.append(
                        Event(
                            "identified",
                            frame.time,
                            frame.index,
                            tid,
                            ident.identity,
                            ident.status,
                            ident.distance,
                            len(ident.votes),
                            previous=before,
                        )
                    )
        events += [self._left(t.id, frame.index) for t in ended]
        state = _State(frame.time, {tid: boxes[i] for i, tid in enumerate(track_ids)}, self._answers())
        if final:
            events += [self._left(t.id, frame.index) for t in self.tracker.finish()]
        # the frames before this key frame: boxes interpolated between the previous key frame and this one
        if self.held is not None:
            yield self.held
        for f in between:
            yield self._between(f, state)
        self.held = FrameResult(frame.index, frame.time, image, self._faces(state, detected=True), events, True)
        self.prev = state

    def close_last(self) -> None:
        """The video ended on a key frame: end its tracks there."""
        if self.held is not None:
            self.held.events.extend(self._left(t.id, self.held.index) for t in self.tracker.finish())

    def flush(self) -> Iterator[FrameResult]:
        if self.held is not None:
            yield self.held
            self.held = None

    # ------------------------------------------------------------------ helpers
    def _answers(self) -> dict[int, tuple[str | None, str, float | None]]:
        return {tid: (i.identity, i.status, i.settled_at) for tid, i in self.ids.items()}

    def _left(self, tid: int, index: int) -> Event:
        ident = self.ids[tid]
        return Event(
            "left",
            self.last_seen[tid],
            index,
            tid,
            ident.identity,
            ident.status,
            ident.distance,
            len(ident.votes),
            first_seen=self.first_seen[tid],
            gated=self.gated.get(tid),
        )

    def _faces(self, state: _State, detected: bool, boxes: dict | None = None) -> list[FaceResult]:
        out = []
        for tid, box in (boxes if boxes is not None else state.boxes).items():
            identity, status, settled = state.answers.get(tid, (None, PENDING, None))
            out.append(
                FaceResult(tid, np.asarray(box, np.float32), identity, status, settled, detected, self.gated.get(tid))
            )
        return out

    def _between(self, frame: Frame, nxt: _State) -> FrameResult:
        """A frame between two key frames: tracks seen at both, boxes interpolated in time, answers
        as of the earlier key frame (nothing is known before it is computed)."""
        prev = self.prev
        boxes = {}
        if prev is not None:
            span = max(nxt.time - prev.time, 1e-9)
            a = float(np.clip((frame.time - prev.time) / span, 0.0, 1.0))
            boxes = {tid: (1 - a) * prev.boxes[tid] + a * nxt.boxes[tid] for tid in prev.boxes if tid in nxt.boxes}
        state = _State(frame.time, boxes, prev.answers if prev is not None else {})
        return FrameResult(frame.index, frame.time, frame.image, self._faces(state, detected=False), [], False)
