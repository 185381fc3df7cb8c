"""Keeps TensorFlow's start-up lines off ``style-transfer``'s stderr, and says when the models load.

TensorFlow prints oneDNN, CUDA-stub and CPU-feature notices while it is imported (some ignore
``TF_CPP_MIN_LOG_LEVEL``) and "failed call to cuInit" at its first operation. :func:`configure` sets
the logging variables (never overriding the user's) and wraps the first ``import tensorflow`` so that
its stderr is captured and only lines that are not known noise are written back. ``facenet_keras``
does the same in its own ``tf_env``; the two packages do not import each other, hence these few
lines here. ``STYLE_TRANSFER_DEBUG=1`` shows everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)|cudart_stub\.cc|cpu_feature_guard\.cc|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags|"
    r"oneDNN custom operations|cuda_platform\.cc|cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|TF-TRT Warning|port\.cc:\d+\] oneDNN"
)


class _Loader(importlib.abc.Loader):
    """TensorFlow's own loader, run with file descriptor 2 captured and filtered."""

    def __init__(self, loader, announcement: str | None):
        self._loader, self._announcement = loader, announcement

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self._announcement and sys.stderr.isatty():
            print(self._announcement, file=sys.stderr, flush=True)
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                lines = tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
                sys.stderr.write("".join(line for line in lines if not NOISE.search(line)))
        with contextlib.suppress(Exception):  # Python-side warnings (AutoGraph's "could not transform ...")
            module.get_logger().setLevel(logging.ERROR)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, announcement: str | None):
        self._announcement = announcement

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, self._announcement)
        return spec


def configure(announcement: str | None = None) -> None:
    """Quiet TensorFlow for this process; ``announcement`` is printed (on a terminal) when it starts loading."""
    if os.environ.get("STYLE_TRANSFER_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    for key, value in {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "3"}.items():
        os.environ.setdefault(key, value)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(announcement))
