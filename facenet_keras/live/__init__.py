"""Live faces: video files, cameras and streams; tracking; recognition per person; liveness.

- :mod:`.frames`: frames in (PyAV: files, cameras, stream URLs; lazily decoded) and the annotated mp4 out;
- :mod:`.tracking`: faces linked across frames (box overlap + embedding distance), pure;
- :mod:`.tracks`: per-track best frames, gallery votes, "not recognised", when it settled; pure;
- :mod:`.watch`: the loop (detect every Nth frame, track between, events);
- :mod:`.liveness`: is the face in a short clip a live person (passive cues, active challenge).

Nothing heavy is imported here: ``import facenet_keras.live`` is cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "watch": "watch",
    "FrameResult": "watch",
    "Event": "watch",
    "VideoError": "frames",
    "open_video": "frames",
    "read_frames": "frames",
    "VideoWriter": "frames",
    "check_liveness": "liveness",
    "LivenessResult": "liveness",
    "Challenge": "liveness",
}
__all__ = [
    "Challenge",
    "Event",
    "FrameResult",
    "LivenessResult",
    "VideoError",
    "VideoWriter",
    "check_liveness",
    "open_video",
    "read_frames",
    "watch",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'facenet_keras.live' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
