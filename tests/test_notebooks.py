"""Every notebook in ``notebooks/`` runs top to bottom (a failing cell fails the build).

Each notebook is executed with nbclient in a fresh ``python3`` kernel of this interpreter, with
``FACENET_KERAS_FAST=1`` (the notebooks shrink their long steps) and ``notebooks/`` as the working
directory, under a time limit per notebook. The stored notebooks carry the outputs of a full-settings
run (``make notebooks``) of exactly what ``scripts/make_notebooks.py`` generates (its ``--check``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from bounded_waits import load_factor

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = [
    "01_face_verification_and_recognition.ipynb",
    "02_triplet_loss_and_one_shot_learning.ipynb",
    "03_siamese_binary_classification.ipynb",
    "04_neural_style_transfer.ipynb",
    "05_door_camera.ipynb",
]
# Wall-clock limit per notebook in FAST mode, kernel start included (CI machine: 2 idle cores), times
# how busy the machine is while it runs (bounded_waits.load_factor).
NOTEBOOK_LIMIT_S = 240
CELL_LIMIT_S = 180


def _python_names() -> set[str]:
    v = sys.version_info
    return {"python", f"python{v[0]}", f"python{v[0]}.{v[1]}"}


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Environment for the kernel; a kernel spec that runs ``sys.executable`` is guaranteed.

    jupyter_client replaces a spec's leading ``python`` by the current interpreter; a spec that
    names some other interpreter (a user-wide one) is shadowed by one written to a temp dir.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    env = dict(os.environ, FACENET_KERAS_FAST="1", TF_CPP_MIN_LOG_LEVEL="2")
    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        argv0 = None
    with pytest.MonkeyPatch.context() as mp:
        if argv0 not in _python_names() and argv0 != sys.executable:
            prefix = tmp_path_factory.mktemp("kernel")
            subprocess.run(
                [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "python3"],
                check=True,
                capture_output=True,
            )
            env["JUPYTER_PATH"] = os.pathsep.join([str(prefix / "share" / "jupyter"), env.get("JUPYTER_PATH", "")])
            mp.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])  # the spec is looked up in this process
        yield env


def test_all_five_notebooks_are_there_with_stored_figures():
    assert [p.name for p in NOTEBOOKS] == EXPECTED
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and "FACENET_KERAS_FAST" in code[0].source, f"{path.name}: first code cell must read FAST"
        images = sum("image/png" in out.get("data", {}) for c in code for out in c.outputs)
        assert images >= 3, f"{path.name}: stored with {images} figures (run make notebooks)"
        tagged = [c for c in code if "readme-figure" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: exactly one cell tagged readme-figure"


def test_notebooks_are_a_full_run_of_their_generator():
    """The stored outputs come from the current notebook code, run top to bottom at full settings,
    with no picture in cells tagged private-photos."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_notebooks.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_env, request):
    nb = nbformat.read(path, as_version=4)
    if path.stem == "05_door_camera":
        request.getfixturevalue("shared_data")  # the clip and the portraits: skips with a reason without them
        # dlib's 68-point model is converted once per session into the session's FACENET_KERAS_HOME,
        # which the kernel shares (the liveness tests do the same): its minutes are not the notebook's
        from facenet_keras.faces.landmarks import load_shape_predictor_68

        load_shape_predictor_68()
    t0, busy = time.perf_counter(), load_factor()

    def time_left(_cell) -> int:  # each cell gets what is left of the notebook's budget, both scaled
        nonlocal busy  # by how busy the machine is (the highest load factor seen)
        busy = max(busy, load_factor())
        return max(1, min(int(CELL_LIMIT_S * busy), int(t0 + NOTEBOOK_LIMIT_S * busy - time.perf_counter())))

    client = nbclient.NotebookClient(
        nb,
        timeout=None,
        timeout_func=time_left,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute(env=kernel_env)  # raises CellExecutionError (or a timeout) naming the failing cell
    seconds, busy = time.perf_counter() - t0, max(busy, load_factor())
    limit = NOTEBOOK_LIMIT_S * busy
    assert seconds < limit, f"{path.name} took {seconds:.0f} s (limit {NOTEBOOK_LIMIT_S} s x{busy:.1f} load)"
    images = sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.outputs)
    assert images >= 3, f"{path.name}: only {images} figures were drawn"
