"""The one place that keeps TensorFlow quiet, for the CLI, the Python API and the notebooks.

TensorFlow writes to the process's stderr from C++: oneDNN and CPU-feature notices, "Could not find
cuda drivers", "failed call to cuInit ... (303)", cost-estimator dumps. Most obey
``TF_CPP_MIN_LOG_LEVEL``, which must be set before TensorFlow is first imported; the lines printed
while its libraries load ("All log messages before absl::InitializeLog() ...") obey nothing, so the
import itself runs with file descriptor 2 captured and only the lines that are not known noise are
written back. :func:`configure` (called when ``facenet_keras`` is imported, which costs nothing: it
only sets variables and a hook on the first ``import tensorflow``) does both.

``FACENET_KERAS_DEBUG=1`` turns all of this off (everything TensorFlow says is shown). A variable
the user set (e.g. ``TF_CPP_MIN_LOG_LEVEL``) is never overridden.
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

__all__ = ["announce_loading", "configure", "debug_enabled", "quiet_stderr", "NOISE"]

# Lines TensorFlow (and the libraries it loads) print that say nothing to a user of this package.
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)|cudart_stub\.cc|cpu_feature_guard\.cc|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags|"
    r"oneDNN custom operations|cuda_platform\.cc|cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|TF-TRT Warning|op_level_cost_estimator|"
    r"Attempting to register factory for plugin|port\.cc:\d+\] oneDNN"
)

_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ logging: errors and below hidden (cuInit 303, cost estimator)
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "3",
}


_announcement: str | None = None


def announce_loading(message: str | None) -> None:
    """Have the first ``import tensorflow`` print ``message`` on stderr, if stderr is a terminal (the
    CLI's "loading the models" line: TensorFlow and the weights take seconds before the first output)."""
    global _announcement
    _announcement = message


def debug_enabled() -> bool:
    """Whether ``FACENET_KERAS_DEBUG`` asks for everything (tracebacks, TensorFlow's own logs)."""
    return os.environ.get("FACENET_KERAS_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def quiet_stderr():
    """Run a block with file descriptor 2 captured; afterwards write back what is not :data:`NOISE`."""
    if debug_enabled():
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [
                line
                for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not NOISE.search(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """Wraps TensorFlow's own loader: executes the package with stderr filtered."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if _announcement and sys.stderr.isatty():
            print(_announcement, file=sys.stderr, flush=True)
        with quiet_stderr():
            self._loader.exec_module(module)
        with contextlib.suppress(Exception):
            module.get_logger().setLevel(logging.ERROR)

    def __getattr__(self, name):  # is_package, get_resource_reader, ... of the real loader
        return getattr(self._loader, name)


class _QuietImportFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once (as the normal path finder would) and wraps its loader."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def configure() -> None:
    """Set TensorFlow's logging variables (unless the user set them) and, if TensorFlow is not
    imported yet, filter what its import prints. Idempotent and cheap."""
    if debug_enabled():
        return
    for key, value in _ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImportFinder())
