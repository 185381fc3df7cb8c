"""The service's inference and storage, shared by every request of one worker process.

- Photos are decoded with :func:`facenet_keras.images.load_image` under the service's pixel limit,
  after their sizes (read from the headers) are reserved in the worker's
  :class:`~facenet_keras.service.budget.PixelBudget` (:meth:`Engine.hold`).
- Detection and chip alignment run in the request's own thread, at most ``detect_workers`` at a
  time (the cores), so several photos are detected in parallel.
- Every photo goes through the encoder's one :class:`~facenet_keras.faces.pipeline.FacePipeline`
  (detection, the quality gate, the encoder's own chips), whose chips go through one
  :class:`~facenet_keras.service.batching.BatchQueue` in front of
  :func:`facenet_keras.faces.pipeline.embed_chips` (mirrored chip averaged in, as everywhere else),
  so concurrent requests share encoder batches.
- The encoder is the pretrained one or the user's (``model``, a ``.keras`` file); the gallery must hold
  embeddings of its space (:func:`~facenet_keras.identity.recognition.check_gallery_space`), else
  :meth:`Engine.load` fails and ``/readyz`` says why.
- The gallery is opened and used from one thread (SQLite connections belong to the thread that made
  them), through :class:`GalleryThread`; its calls are short (a matrix product, a transaction).
The decisions themselves (thresholds, nearest identity) are :mod:`facenet_keras.identity.recognition`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from facenet_keras.faces.face import Face
from facenet_keras.images import image_size, load_image
from facenet_keras.service.batching import BatchQueue
from facenet_keras.service.budget import PixelBudget, hold

log = logging.getLogger("facenet_keras.service")

__all__ = ["Engine", "GalleryThread"]


class GalleryThread:
    """A gallery opened in, and only ever used from, one dedicated thread.

    Attribute reads and method calls are forwarded to that thread and waited for, so the object can
    be passed wherever a :class:`~facenet_keras.identity.gallery.FaceGallery` is expected.
    """

    def __init__(self, url, backend: str = "exact"):
        from facenet_keras.identity.gallery import FaceGallery

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gallery")
        self._gallery = self._pool.submit(FaceGallery, url, backend=backend).result()

    def call(self, fn, *args, **kwargs):
        """``fn(gallery, *args, **kwargs)`` in the gallery's thread."""
        return self._pool.submit(fn, self._gallery, *args, **kwargs).result()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._pool.submit(getattr, self._gallery, name).result()
        if callable(value):
            return lambda *a, **k: self._pool.submit(value, *a, **k).result()
        return value

    def __len__(self) -> int:
        return self.call(len)

    def __contains__(self, name: str) -> bool:
        return self.call(lambda g: name in g)

    def close(self) -> None:
        try:
            self.call(lambda g: g.close())
        finally:
            self._pool.shutdown(wait=False)


class Engine:
    """Detector, encoder, batch queue and gallery of one worker; :meth:`load` warms them up."""

    def __init__(
        self,
        gallery_url=None,
        *,
        model=None,
        max_pixels: int = 25_000_000,
        max_request_pixels: int = 50_000_000,
        budget: PixelBudget | None = None,
        max_batch: int = 32,
        batch_wait_s: float = 0.005,
        detect_workers: int | None = None,
        on_batch=None,
    ):
        self.gallery = GalleryThread(gallery_url)
        self.model_source = model  # a .keras path, a Keras model or None (the pretrained encoder)
        self.space: str | None = None  # the encoder's embedding space, once loaded
        self.max_pixels, self.max_request_pixels = int(max_pixels), int(max_request_pixels)
        self.budget = budget or PixelBudget(self.max_request_pixels, 10.0)
        self.max_batch, self.batch_wait_s, self.on_batch = int(max_batch), float(batch_wait_s), on_batch
        self._detect_slots = threading.BoundedSemaphore(max(1, detect_workers or os.cpu_count() or 1))
        self.ready = threading.Event()
        self.failure: str | None = None
        self.liveness_ready = threading.Event()  # set when the 68-point landmark model is loaded (or failed)
        self.liveness_failure: str | None = None
        self.batcher: BatchQueue | None = None  # the (first) encoder's queue
        self.batchers: list[BatchQueue] = []  # one per encoder (two for a fused profile)
        self.pipeline = None  # the FacePipeline every request goes through, once loaded

    @property
    def model(self):
        """The served encoder's pipeline (what decisions take as ``model``: its space and threshold)."""
        return self.pipeline

    # ------------------------------------------------------------------ start-up
    def load(self) -> None:
        """Build the encoder and detector and run each once (so the first request is not slow)."""
        try:
            from facenet_keras.faces.detection import shared_detector
            from facenet_keras.faces.pipeline import FacePipeline, ProfilePipeline, embed_chips, resolve_model
            from facenet_keras.identity.rules import check_gallery_space, encoder_for

            source = encoder_for(self.gallery, self.model_source)  # a gallery of a profile opens with it
            fused = getattr(source, "fused", False)
            models = [p.load() for p in source.parts] if fused else [resolve_model(source)]

            def queue(model) -> BatchQueue:  # one per encoder: concurrent requests share its batches
                def encode(chips: np.ndarray) -> np.ndarray:
                    return embed_chips(chips, model=model, flip=True, batch_size=self.max_batch)

                return BatchQueue(
                    encode, max_batch=self.max_batch, max_wait_s=self.batch_wait_s, on_batch=self.on_batch
                )

            self.batchers = [queue(m) for m in models]
            self.batcher = self.batchers[0]
            # the one pipeline (detection, the quality gate, the encoder's own chips); its embeddings
            # go through the batch queues, so concurrent requests share encoder batches
            if fused:
                self.pipeline = ProfilePipeline(source, detector=shared_detector(), embedder=self._fused(self.batchers))
            else:
                self.pipeline = FacePipeline(source, detector=shared_detector(), embedder=self.batcher)
            self.space = check_gallery_space(self.gallery, self.pipeline)
            rng = np.random.default_rng(0)
            self.pipeline.detect(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
            for q, m in zip(self.batchers, models):
                q(np.zeros((1, *m.input_shape[1:3], 3), np.uint8))
            self.ready.set()
        except Exception as exc:  # reported by /readyz; the process stays up to say so
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("the models failed to load: %s", self.failure)
            return
        try:  # after readiness: converted into the cache once (minutes on a busy machine), ~1 s after
            from facenet_keras.faces.landmarks import load_shape_predictor_68

            load_shape_predictor_68()
        except Exception as exc:
            self.liveness_failure = f"{type(exc).__name__}: {exc}"
            log.error("the liveness landmark model failed to load: %s", self.liveness_failure)
        finally:
            self.liveness_ready.set()

    def _fused(self, submits):
        """chips (one array per encoder) -> the profile's fused embeddings, each part through its queue."""
        return lambda chips: self.pipeline.profile.fuse([submit(c) for submit, c in zip(submits, chips)])

    def close(self) -> None:
        for batcher in self.batchers:
            batcher.close()
        self.gallery.close()

    # ------------------------------------------------------------------ inference
    def load_image(self, data: bytes, name: str) -> np.ndarray:
        """Decoded upload, refused (ImageError) beyond the pixel limit before any pixel is decoded."""
        return load_image(data, name=name, max_pixels=self.max_pixels)

    def image_size(self, data: bytes, name: str) -> tuple[int, int]:
        """An upload's (width, height) from its header, refused (ImageError) as :meth:`load_image` would."""
        return image_size(data, name=name, max_pixels=self.max_pixels)

    def hold(self, pixels: int) -> None:
        """Reserve ``pixels`` about to be decoded for the running request (413 / 503, see :func:`hold`)."""
        hold(self.budget, pixels, self.max_request_pixels)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face of a photo, judged by the quality gate (no embedding)."""
        with self._detect_slots:
            return self.pipeline.detect(image)

    def encode(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Every face of every photo, judged, the usable ones with their embedding; all their chips
        in one shared batch of the queue."""
        with contextlib.ExitStack() as stack:
            submits = [stack.enter_context(q.expect()) for q in self.batchers]
            detections = []
            for image in images:
                with self._detect_slots:
                    detections.append(self.pipeline.detect(image))
            embed = self._fused(submits) if len(submits) > 1 else submits[0]
            return self.pipeline.encode_images(images, detections, embed=embed)
