"""What the two commands print while they start: one "loading the models" line on a terminal, and none
of TensorFlow's own start-up lines (oneDNN, CUDA stubs, cuInit, AutoGraph)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from facenet_keras.cli import LOADING_MESSAGE as FACENET_LOADING
from style_transfer.cli import LOADING_MESSAGE as STYLE_LOADING

REPO = Path(__file__).resolve().parents[1]
TF_NOISE = ("oneDNN", "cuda", "cuInit", "absl::InitializeLog", "cpu_feature_guard", "AutoGraph", "I0000", "E0000")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DEBUG") and not k.startswith(("TF_", "GLOG_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _run(args: list[str], terminal: bool) -> tuple[int, str, str]:
    """Run ``python -m ...`` with stderr a pseudo-terminal (``terminal``) or a pipe."""
    if not terminal:
        r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_env(), timeout=300)
        return r.returncode, r.stdout, r.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=slave, env=_env(), text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=300)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, Path]:
    """Two public-domain pictures: matplotlib's Grace Hopper and scikit-image's astronaut."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("startup")
    astronaut = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((128, 128)).save(astronaut)
    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), astronaut


def test_style_transfer_says_nothing_of_tensorflow(images, tmp_path):
    grace, astronaut = images
    args = ["-m", "style_transfer.cli", str(grace), str(astronaut), "--fast", "--size", "64"]
    code, out, err = _run([*args, "-o", str(tmp_path / "piped.png")], terminal=False)
    assert code == 0 and out.startswith("wrote "), err
    assert err == ""  # no TensorFlow lines, and no loading line when stderr is not a terminal
    code, out, err = _run([*args, "-o", str(tmp_path / "tty.png")], terminal=True)
    assert code == 0 and (tmp_path / "tty.png").is_file()
    assert err.strip().splitlines() == [STYLE_LOADING]


def test_facenet_keras_says_it_is_loading_on_a_terminal(images, tmp_path):
    grace, _ = images
    code, out, err = _run(["-m", "facenet_keras.cli", "detect", str(grace)], terminal=True)
    assert code == 0 and out.strip(), out + err
    lines = err.strip().splitlines()
    assert lines == [FACENET_LOADING], lines
    assert not any(word in err for word in TF_NOISE)
