"""Frames in and out: video files, cameras and network streams read lazily with PyAV; the annotated
video written as H.264 mp4.

PyAV ships FFmpeg in its wheel, so files (any container FFmpeg reads), V4L2 cameras (``/dev/video0``
or just ``0``), and RTSP/HTTP(S) stream URLs all come through one API. Frames are decoded one at a
time as the caller iterates, so memory stays bounded whatever the length of the source.

Every failure to read is a :class:`VideoError` (a ``ValueError``: the CLI's "bad input", exit 2)
with one clear message: not a video, no video stream, empty or truncated file, a camera that cannot
be opened, a stream that stops. Frames decoded before a failure have already been handed out, so
the caller can close its outputs properly and then report the error.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Frame",
    "VideoError",
    "VideoLimitError",
    "VideoSource",
    "VideoWriter",
    "open_video",
    "read_frames",
    "decode_clip",
    "frame_times",
]

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# A file whose decoding ends before this fraction of the frames its header declares is truncated.
_TRUNCATED_FRACTION = 0.9


class VideoError(ValueError):
    """A video source that cannot be read (or stopped being readable); the message says why."""


class VideoLimitError(VideoError):
    """A clip beyond a size limit (frames too large, or too many of them): refused before it is decoded whole."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``index`` (0-based, in decoding order), ``time`` (seconds from the first
    frame) and ``image`` (H, W, 3) uint8 RGB."""

    index: int
    time: float
    image: np.ndarray


def _av():
    """The ``av`` module (PyAV), or one clear message saying how to install it."""
    try:
        import av
    except ModuleNotFoundError:
        raise VideoError(
            "reading and writing video needs PyAV: pip install 'facenet-keras[video]' (or pip install av)"
        ) from None
    return av


def _describe(source) -> str:
    if isinstance(source, (bytes, bytearray)):
        return "the clip"
    if isinstance(source, int) or (isinstance(source, str) and (source.isdigit() or source.startswith("/dev/video"))):
        return f"camera {source}"
    return str(source)


def _camera(source) -> tuple[str, str | None] | None:
    """(device, FFmpeg input format) when ``source`` names a camera, else None."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        n = int(source)
        if sys.platform.startswith("linux"):
            return f"/dev/video{n}", "v4l2"
        if sys.platform == "darwin":
            return str(n), "avfoundation"
        return f"video={n}", "dshow"
    if isinstance(source, str) and source.startswith("/dev/video"):
        return source, "v4l2"
    return None


class VideoSource:
    """An opened video (file, camera or stream); iterate for :class:`Frame` objects, decoded lazily.

    Args:
        source: a file path, a camera (an int or ``"/dev/videoN"``), a stream URL, or a whole
            file's bytes (an uploaded clip).
        max_seconds: stop after this many seconds of video (from the first frame's time stamp).
        size: (width, height) to scale every frame to while decoding (FFmpeg's scaler), or None.
        max_frame_pixels: refuse (:class:`VideoLimitError`) a frame larger than this before it is
            converted to RGB: a stream may change its frame size after the header.

    Attributes: ``fps`` (frames per second, nominal; 30 when the source does not say),
    ``width``/``height`` (of the frames handed out), ``frame_count`` (declared by a file's header,
    None when unknown), ``live`` (camera or stream: no end expected).
    """

    def __init__(
        self,
        source,
        *,
        max_seconds: float | None = None,
        size: tuple[int, int] | None = None,
        max_frame_pixels: int | None = None,
    ):
        av = _av()

        if max_seconds is not None and not (np.isfinite(max_seconds) and max_seconds > 0):
            raise ValueError(f"max_seconds must be a positive number of seconds, got {max_seconds!r}")
        self.source = source
        self.max_seconds = max_seconds
        name = _describe(source)
        in_memory = isinstance(source, (bytes, bytearray))
        camera = None if in_memory else _camera(source)
        self.live = camera is not None or bool(isinstance(source, str) and _URL.match(source))
        if in_memory and not source:
            raise VideoError(f"{name} is empty (0 bytes): not a video")
        if camera is None and not self.live and not in_memory:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"video file not found: {source}")
            if path.stat().st_size == 0:
                raise VideoError(f"{source} is empty (0 bytes): not a video")
        try:
            if camera is not None:
                self._container = av.open(camera[0], format=camera[1], timeout=10.0)
            elif in_memory:
                self._container = av.open(io.BytesIO(bytes(source)))
            else:
                self._container = av.open(str(source), timeout=10.0 if self.live else None)
        except av.error.FileNotFoundError as exc:
            raise VideoError(f"cannot open {name}: {exc.strerror or exc}") from None
        except (av.error.FFmpegError, OSError) as exc:
            if camera is not None:
                raise VideoError(f"cannot open {name}: {getattr(exc, 'strerror', None) or exc}") from None
            if self.live:
                raise VideoError(f"cannot open stream {name}: {getattr(exc, 'strerror', None) or exc}") from None
            raise VideoError(
                f"{name} is not a readable video (a truncated file, or not a video at all: "
                f"FFmpeg says {getattr(exc, 'strerror', None) or exc})"
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{name} has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        ctx = self._stream.codec_context
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.width, self.height = self.size or (int(ctx.width), int(ctx.height))
        self.frame_count = int(self._stream.frames) if self._stream.frames else None
        if camera is None and self.frame_count:  # a URL of a file (it declares its length): it may end
            self.live = False
        self.name = name
        self.decoded = 0
        self.max_frame_pixels = max_frame_pixels

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    @property
    def duration(self) -> float | None:
        """Seconds declared by the header (files), else None."""
        if self.frame_count:
            return self.frame_count / self.fps
        return None

    def __iter__(self) -> Iterator[Frame]:
        av = _av()

        start = None
        try:
            for frame in self._container.decode(self._stream):
                t = frame.time if frame.time is not None else self.decoded / self.fps
                if start is None:
                    start = t
                t -= start
                if self.max_seconds is not None and t >= self.max_seconds:
                    return
                if self.max_frame_pixels is not None and frame.width * frame.height > self.max_frame_pixels:
                    raise VideoLimitError(
                        f"frame {self.decoded + 1} of {self.name} is {frame.width}x{frame.height}, larger than "
                        f"the limit of {self.max_frame_pixels:,} pixels"
                    )
                if self.size is not None:
                    image = frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1])
                else:
                    image = frame.to_ndarray(format="rgb24")
                yield Frame(self.decoded, float(t), image)
                self.decoded += 1
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(self._stopped(getattr(exc, "strerror", None) or str(exc))) from None
        if self.decoded == 0:
            raise VideoError(f"{self.name} holds no decodable frame (zero-length video)")
        if self.live:  # a camera or live stream has no end: it stopped
            raise VideoError(self._stopped("end of stream"))
        if not self.live and self.frame_count and self.decoded < _TRUNCATED_FRACTION * self.frame_count:
            raise VideoError(self._stopped(f"the header declares {self.frame_count} frames: truncated file"))

    def _stopped(self, why: str) -> str:
        at = f"after {self.decoded} frame(s) ({self.decoded / self.fps:.1f} s)"
        kind = "stream" if self.live else "video"
        return f"{kind} {self.name} stopped {at}: {why}"


def open_video(
    source,
    *,
    max_seconds: float | None = None,
    size: tuple[int, int] | None = None,
    max_frame_pixels: int | None = None,
) -> VideoSource:
    """Open a video file, camera or stream URL for lazy reading (see :class:`VideoSource`)."""
    return VideoSource(source, max_seconds=max_seconds, size=size, max_frame_pixels=max_frame_pixels)


def read_frames(
    source, *, max_seconds: float | None = None, start: float = 0.0, step: int = 1
) -> tuple[np.ndarray, np.ndarray, float]:
    """Every ``step``-th frame from ``start`` s up to ``max_seconds`` s of a short clip, in memory:
    (frames (T, H, W, 3) uint8, times (T,) seconds, fps). For the few seconds liveness looks at;
    use :func:`open_video` to walk through long videos."""
    frames, times = [], []
    end = None if max_seconds is None else start + max_seconds
    with open_video(source, max_seconds=end) as video:
        for f in video:
            if f.time >= start and (f.index % step == 0):
                frames.append(f.image)
                times.append(f.time)
        fps = video.fps
    if not frames:
        raise VideoError(f"{_describe(source)} has no frame after {start:g} s")
    return np.stack(frames), np.asarray(times, np.float64), fps


def decode_clip(
    data: bytes,
    max_frames: int,
    max_pixels: int,
    max_total_pixels: int | None = None,
    reserve: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A short uploaded clip's frames (T, H, W, 3) uint8 and their times (s, from 0).

    Refused with a :class:`VideoLimitError` before a frame is decoded when the header's frame size is
    over ``max_pixels``, or its declared frame count over ``max_frames`` or (times the frame size)
    over ``max_total_pixels``; and while decoding, since a container may lie, as soon as one more
    frame would pass a limit or a frame differs in size. ``reserve(pixels)`` is called before the
    pixels it names are decoded (the header's count at once, then each frame beyond it), so a
    caller can account for the memory before it is taken.
    """
    total = max_total_pixels if max_total_pixels is not None else max_frames * max_pixels
    with open_video(data, max_frame_pixels=max_pixels) as video:
        width, height = video.width, video.height
        each = width * height
        if each > max_pixels:
            raise VideoLimitError(f"{width}x{height} frames are larger than the limit of {max_pixels:,} pixels")
        cap = min(max_frames, total // max(each, 1))
        declared = video.frame_count
        if declared is not None:
            _check_clip_length(declared, width, height, max_frames, total, "declares")
        held = min(declared or cap, cap)
        if reserve is not None:
            reserve(held * each)
        out = np.empty((held, height, width, 3), np.uint8)
        times = []
        for f in video:
            n = len(times)
            if n == cap:
                _check_clip_length(n + 1, width, height, max_frames, total, "has")
            if f.image.shape != (height, width, 3):
                raise VideoLimitError(
                    f"frame {n + 1} is {f.image.shape[1]}x{f.image.shape[0]}; the clip's frames are {width}x{height}"
                )
            if n == len(out):  # more frames than the header declared: grow, within the limits
                grown = min(cap, max(2 * n, 1))
                if reserve is not None:
                    reserve((grown - n) * each)
                out = np.concatenate([out, np.empty((grown - n, height, width, 3), np.uint8)])
            out[n] = f.image
            times.append(f.time)
    return out[: len(times)], np.asarray(times, np.float64)


def _check_clip_length(frames: int, width: int, height: int, max_frames: int, total: int, verb: str) -> None:
    """VideoLimitError when ``frames`` frames of width x height pass the frame or pixel limit."""
    if frames > max_frames:
        raise VideoLimitError(f"the clip {verb} {frames} frames, more than the limit of {max_frames}")
    if frames * width * height > total:
        raise VideoLimitError(
            f"the clip {verb} {frames} frames of {width}x{height} = {frames * width * height:,} pixels, more than "
            f"the limit of {total:,} decoded pixels per request"
        )


def frame_times(text: str | None, n: int, fps: float) -> np.ndarray:
    """``n`` frame times (s) from a comma-separated list (non-decreasing, >= 0), or i / fps without
    one; ValueError saying what is wrong with the list."""
    if text is None:
        return np.arange(n) / float(fps)
    try:
        t = np.array([float(x) for x in text.split(",")], np.float64)
    except ValueError:
        raise ValueError("'times' must be comma-separated seconds, one per frame") from None
    if len(t) != n:
        raise ValueError(f"{len(t)} times for {n} frames: give one per frame")
    if not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) < 0):
        raise ValueError("'times' must be finite, >= 0 and in order")
    return t


class VideoWriter:
    """An H.264 mp4 written frame by frame, into a temporary file renamed into place by
    :meth:`close` (also after an error: the frames written so far make a valid, shorter video).

    The file is created 0600: an annotated video shows people's faces and names.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        from fractions import Fraction

        av = _av()

        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"{path} is a folder; give a file name for the annotated video")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".mp4")
        os.close(fd)
        os.chmod(tmp, 0o600)
        self._tmp = Path(tmp)
        width, height = int(size[0]) // 2 * 2, int(size[1]) // 2 * 2  # yuv420p needs even sides
        self.size = (width, height)
        self._container = av.open(tmp, "w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"preset": "veryfast", "crf": "23"}
        self.frames = 0
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame (cropped to even sides if needed)."""
        av = _av()

        image = np.ascontiguousarray(np.asarray(image, np.uint8)[: self.size[1], : self.size[0]])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder, write the trailer and move the file into place."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
        if self.frames:
            os.replace(self._tmp, self.path)
        else:  # nothing decoded: leave no unplayable file behind
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
