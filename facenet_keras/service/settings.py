"""What one service process needs (:class:`Settings`, filled by ``facenet-keras serve``), how its
worker processes receive it (an environment variable), and the service's log."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

__all__ = ["Settings", "SETTINGS_ENV", "configure_logging"]

SETTINGS_ENV = "FACENET_KERAS_SERVICE_SETTINGS"


@dataclass
class Settings:
    """What one service process needs; ``facenet-keras serve`` fills it from its options."""

    gallery: str | None = None  # gallery URL or path (None: the default gallery)
    model: str | None = None  # the encoder (a .keras file) the gallery was built with (None: the pretrained one)
    profile: str | None = None  # or the profile: 'fast' / 'accurate' (None: the gallery's own, else fast)
    library: str | None = None  # the photo library's face index (None: beside the gallery); People tab
    keys: str | None = None  # keys file (None: $FACENET_KERAS_KEYS or the user data folder)
    secret: str | None = None  # token signing secret file (None: beside the keys file)
    jobs: str | None = None  # jobs folder (None: beside the keys file)
    job_ttl_s: float = 3600.0  # a finished job and its result are deleted this long after it ended
    styles: str | None = None  # folder of built-in style images offered by /v1/styles
    style_model: str | None = None  # a user's own TF-Hub-signature SavedModel for method=fast (default: offline)
    max_upload_bytes: int = 10 * 2**20  # whole request body
    max_pixels: int = 25_000_000  # per photo or video frame, checked before decoding
    max_frames: int = 150  # per liveness clip
    max_request_pixels: int = 50_000_000  # decoded pixels per request (all its photos or frames)
    max_pixels_in_flight: int = 50_000_000  # decoded pixels held by all requests of a worker at once
    pixel_wait_s: float = 10.0  # how long a request waits for that budget before a 503
    request_timeout_s: float = 60.0
    challenge_ttl_s: float = 120.0
    cors_origins: list[str] = field(default_factory=list)  # empty: no CORS (same-origin only)
    max_batch: int = 32  # faces per shared encoder batch
    batch_wait_ms: float = 5.0  # how long the batch queue waits for more faces
    detect_workers: int | None = None  # detections at once (default: the CPU count)
    max_stylize_size: int = 512
    max_stylize_steps: int = 1000
    log_level: str = "info"
    # slow and idle clients (see docs/deploy.md)
    header_timeout_s: float = 10.0  # from a connection's accept to its request's last header
    body_timeout_s: float = 30.0  # for a request body, plus 1 s per min_body_rate bytes received
    min_body_rate: int = 50_000  # bytes per second
    keep_alive_s: float = 5.0  # how long an idle kept-alive connection stays open
    max_connections: int = 1000  # open at once; beyond, the one waiting longest for its headers is closed
    max_in_flight: int = 64  # requests being answered at once; beyond, 503 (the probes always answer)
    # keys and audit
    key_failures: int = 10  # failed key attempts from one address in key_window_s, then 429
    key_window_s: float = 60.0
    audit_log: str | None = None  # writes' audit log (None: audit.log beside the keys file)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> Settings:
        return cls(**json.loads(os.environ.get(SETTINGS_ENV, "{}")))


def configure_logging(level: str = "info") -> None:
    """The service's log (errors, the access log of route templates) on stderr, once per process."""
    logger = logging.getLogger("facenet_keras.service")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
