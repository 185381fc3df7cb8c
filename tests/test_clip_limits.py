"""decode_clip under its limits: a clip is refused from its header before a frame is decoded, and
while decoding as soon as one more frame would pass a limit (a container may not declare, or may
lie about, its length); memory is reserved before it is taken."""

from __future__ import annotations

import io

import numpy as np
import pytest

av = pytest.importorskip("av")

from facenet_keras.live import frames as frames_module  # noqa: E402
from facenet_keras.live.frames import VideoLimitError, decode_clip  # noqa: E402


def _clip(width: int, height: int, n: int, fmt: str = "mp4") -> bytes:
    """n frames of a moving grey ramp, H.264 in ``fmt`` (mp4 declares its frame count; raw h264 does not)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
        for i in range(n):
            frame = np.broadcast_to(np.roll(ramp, 3 * i, axis=1), (height, width, 3)).copy()
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any frame is decoded."""

    def decoded(self):
        raise AssertionError("a frame was decoded before the limits were checked")
        yield  # pragma: no cover

    monkeypatch.setattr(frames_module.VideoSource, "__iter__", decoded)


def test_a_clip_within_the_limits_is_decoded_with_its_memory_reserved_first():
    reserved = []
    video, times = decode_clip(_clip(64, 48, 12), 12, 64 * 48, 12 * 64 * 48, reserved.append)
    assert video.shape == (12, 48, 64, 3) and len(times) == 12 and np.all(np.diff(times) > 0)
    assert reserved == [12 * 64 * 48]  # the declared frames, once, before decoding


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ((150, 63 * 48, None), "64x48 frames are larger than the limit of 3,024 pixels"),
        ((11, 64 * 48, None), "declares 12 frames, more than the limit of 11"),
        ((150, 64 * 48, 11 * 64 * 48), r"declares 12 frames of 64x48 = 36,864 pixels.*33,792 decoded pixels"),
    ],
)
def test_a_clip_over_a_limit_is_refused_from_its_header(no_decoding, limits, message):
    reserved = []
    with pytest.raises(VideoLimitError, match=message):
        decode_clip(_clip(64, 48, 12), *limits, reserved.append)
    assert reserved == []


def test_a_clip_that_does_not_declare_its_length_is_counted_while_decoding():
    data = _clip(64, 48, 12, fmt="h264")  # a raw stream: no frame count in any header
    reserved = []
    with pytest.raises(VideoLimitError, match="has 11 frames, more than the limit of 10"):
        decode_clip(data, 10, 64 * 48, None, reserved.append)
    assert reserved == [10 * 64 * 48]  # the most it may hold, reserved before the first frame
    with pytest.raises(VideoLimitError, match="has 9 frames of 64x48.*24,576 decoded pixels"):
        decode_clip(data, 150, 64 * 48, 8 * 64 * 48)
    video, _ = decode_clip(data, 12, 64 * 48)
    assert video.shape == (12, 48, 64, 3)
