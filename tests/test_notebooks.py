"""The course notebooks: jupytext sources in step with their stored runs, and every one runs.

Each notebook is kept as ``notebooks/NN_name.py`` (the reviewed source) paired with
``notebooks/NN_name.ipynb`` (the same cells with the outputs of a full run, ``make notebooks``). The
fast tests check that the two hold the same cells and that the stored run is a full one with no
picture in a cell tagged ``private-photos``. The slow one executes each source with nbclient in a
fresh ``python3`` kernel of this interpreter, with ``FACENET_KERAS_FAST=1`` (the notebooks shrink their
long steps), ``notebooks/`` as the working directory and the shared data the ``shared_data`` fixture
finds (or none: notebooks 1-4 then use their bundled fallbacks, notebook 5 is skipped), under a time
limit per notebook.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from bounded_waits import load_factor

from facenet_keras.demo import shared_data

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
EXPECTED = [
    "01_face_verification_and_recognition",
    "02_triplet_loss_and_one_shot_learning",
    "03_siamese_binary_classification",
    "04_neural_style_transfer",
    "05_door_camera",
]
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
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
    data = shared_data()  # the kernel uses exactly the data the shared_data fixture finds
    if data is None:
        env["FACENET_KERAS_NO_SHARED_DATA"] = "1"
    else:
        env["FACENET_KERAS_SHARED_DATA"] = str(data)
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


def _runner():
    """scripts/run_notebooks.py, the one owner of the rules for a stored notebook."""
    spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_all_five_notebooks_are_there_with_stored_figures():
    assert [p.stem for p in SOURCES] == EXPECTED
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == EXPECTED
    for py in SOURCES:
        nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and "notebook_setup()" in code[0].source, f"{py.name}: first code cell must call notebook_setup"
        assert "**Data.**" in nb.cells[0].source, f"{py.name}: the first cell must say what data it needs"
        images = sum("image/png" in out.get("data", {}) for c in code for out in c.outputs)
        assert images >= 3, f"{py.name}: stored with {images} figures (run make notebooks)"
        tagged = [c for c in code if "readme-figure" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{py.name}: exactly one cell tagged readme-figure"


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_source_and_stored_notebook_hold_the_same_cells(py):
    """Edit the .py, then run make notebooks (or save from JupyterLab, which writes both)."""
    why = _runner().out_of_sync(py, py.with_suffix(".ipynb"))
    assert why is None, f"{why}: run make notebooks ONLY={py.name[:2]}"


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_stored_notebook_is_a_full_run_without_private_pictures(py):
    """The stored outputs come from one run at full settings, with the shared data, and no cell tagged
    private-photos keeps a picture."""
    problems = _runner().run_problems(nbformat.read(py.with_suffix(".ipynb"), as_version=4))
    assert problems == [], f"{py.with_suffix('.ipynb').name}: {'; '.join(problems)}"


@pytest.mark.slow
@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_runs(py, kernel_env, request):
    if py.stem == "05_door_camera":
        request.getfixturevalue("shared_data")  # the clip and the portraits: skips with a reason without them
        # dlib's 68-point model is converted once per session into the session's FACENET_KERAS_HOME,
        # which the kernel shares (the liveness tests do the same): its minutes are not the notebook's
        from facenet_keras.faces.landmarks import load_shape_predictor_68

        load_shape_predictor_68()
    nb = _runner().from_source(py)
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
    assert seconds < limit, f"{py.name} took {seconds:.0f} s (limit {NOTEBOOK_LIMIT_S} s x{busy:.1f} load)"
    images = sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.outputs)
    assert images >= 3, f"{py.name}: only {images} figures were drawn"
