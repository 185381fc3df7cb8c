"""Waits that cannot flake: each waits on the thing's own signal, fails at once when that signal
says waiting is pointless, and gives up only after a bound made of what is being loaded (measured
seconds on an idle machine) times how busy the machine is, saying what it waited for and what it
saw last."""

from __future__ import annotations

import os
import time

# What a start-up loads, in seconds on an idle 2-core machine, the unit of every bound here: a wait
# gives up after SLACK times the seconds of what it waits for, times how busy the machine is
# (load_factor, re-read while waiting, the highest kept). Measured on an AMD EPYC at load 3.9-6 per
# core and divided by it: TensorFlow's import 26 s (6.7 s idle); Engine.load with an empty cache
# (the ResNet and the 68-point model converted) 179 s (about 36 s idle); with the cache warm 0.05 s.
LOAD_S = {
    "tensorflow": 10.0,  # import TensorFlow and Keras in a new process (a served subprocess)
    "models": 20.0,  # build the encoder and the detector and run each once (Engine.load)
    "resnet": 5.0,  # convert dlib's ResNet weights into an empty cache
    "landmarks68": 20.0,  # convert the 68-point shape predictor (liveness) into an empty cache
    "vgg19": 20.0,  # a style job by optimisation: VGG19's weights read, 2 steps at 64 px
    "magenta": 20.0,  # a fast style job: Magenta's networks built, one image at 64 px
}
SLACK = 5.0
CACHED = {  # the cache files that spare a conversion
    "resnet": "dlib_resnet_v1.weights.h5",
    "landmarks68": "shape_predictor_68_face_landmarks.npz",
}


def load_factor() -> float:
    """How much slower than idle the machine runs now: the 1-minute load average per core, at least 1."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def busy_ms(seconds: float) -> int:
    """A page-action bound, set for an idle machine, in milliseconds stretched by how busy this one
    is now (Playwright's waits take a fixed timeout, not a callable)."""
    return int(1000 * seconds * load_factor())


def startup_loads(*, process: bool = False, liveness: bool = False) -> tuple[str, ...]:
    """What a service start-up has to load here and now: the models, TensorFlow itself in a new
    process, and each weight conversion whose result is not cached yet."""
    from facenet_keras.weights.cache import cache_dir

    loads = ["models"] + (["tensorflow"] if process else [])
    for key in ("resnet",) + (("landmarks68",) if liveness else ()):
        if not (cache_dir() / CACHED[key]).is_file():
            loads.append(key)
    return tuple(loads)


def wait_for(check, what: str, loads: tuple[str, ...], last=lambda: "nothing", poll_s: float = 0.5) -> float:
    """Poll ``check()`` until it is true; returns the seconds waited. ``check`` raises AssertionError
    at once when waiting is pointless (a failure reported, a process gone). Gives up after the bound
    of ``loads`` with a message naming ``what`` was awaited, the bound and ``last()``: the last answer."""
    t0, factor = time.monotonic(), load_factor()
    while not check():
        factor = max(factor, load_factor())
        bound = SLACK * sum(LOAD_S[k] for k in loads) * factor
        waited = time.monotonic() - t0
        if waited > bound:
            raise AssertionError(
                f"gave up waiting for {what} after {waited:.0f} s (bound {bound:.0f} s: {' + '.join(loads)}, "
                f"x{SLACK:g} slack, x{factor:.1f} load); last seen: {last()}"
            )
        time.sleep(poll_s)
    return time.monotonic() - t0
