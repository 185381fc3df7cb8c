"""The photo library: incremental index (re-run, rename, delete, bad file), naming a cluster and new
photos recognised on the next index, search, contact sheets, and resuming after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from bounded_waits import startup_loads, wait_for
from PIL import Image

from facenet_keras.cli import main
from facenet_keras.identity.gallery import FaceGallery
from facenet_keras.library.index import index_folder
from facenet_keras.library.store import open_library

REPO = Path(__file__).resolve().parents[1]


def _copy(shared_data: Path, folder: Path, people: dict[str, list[int]]) -> None:
    for person, numbers in people.items():
        (folder / person).mkdir(parents=True, exist_ok=True)
        for n in numbers:
            shutil.copyfile(shared_data / "faces" / person / f"{n}.png", folder / person / f"{n}.png")


@pytest.fixture(scope="session")
def library_run(tmp_path_factory, shared_data, encoder, detector):
    """A small library (3 people, 8 tight crops, one file that is no image) indexed once."""
    root = tmp_path_factory.mktemp("library")
    photos = root / "photos"
    _copy(shared_data, photos, {"bbt_amy": [1, 2, 3], "bbt_howard": [1, 2, 3], "bbt_penny": [1, 2]})
    (photos / "broken.jpg").write_text("not an image")
    gallery, library = root / "people.sqlite", root / "people.library.sqlite"
    with FaceGallery(gallery) as g, open_library(library) as lib:
        first = index_folder(photos, lib, g, detector=detector)  # model None: the id the CLI uses
    return {"root": root, "photos": photos, "gallery": gallery, "library": library, "first": first}


def _index(run, encoder, detector):
    with FaceGallery(run["gallery"]) as g, open_library(run["library"]) as lib:
        report = index_folder(run["photos"], lib, g, detector=detector)
        return report, lib.counts(), lib.paths()


def test_index_is_incremental(library_run, encoder, detector):
    first = library_run["first"]
    assert (first.files, first.indexed, first.faces) == (9, 8, 8)
    assert list(first.failed) == [str(library_run["photos"] / "broken.jpg")]  # reported, not fatal
    with open_library(library_run["library"]) as lib:
        faces = lib.faces()
    assert all(f.size > 50 and f.sharpness > 0 and abs(f.roll) < 45 for f in faces)
    assert oct(os.stat(library_run["library"]).st_mode & 0o777) == "0o600"

    again, counts, _ = _index(library_run, encoder, detector)  # nothing new
    assert (again.indexed, again.unchanged, again.faces) == (0, 9, 0)
    assert list(again.failed) == list(first.failed)  # still reported, not retried
    assert counts["faces"] == 8

    howard = library_run["photos"] / "bbt_howard"
    (howard / "1.png").rename(howard / "renamed.png")  # a moved file: no new face, no duplicate
    moved, counts, paths = _index(library_run, encoder, detector)
    assert (moved.indexed, moved.recognised_by_content, moved.removed_paths, moved.pruned_faces) == (0, 1, 1, 0)
    assert counts["faces"] == 8 and counts["photos"] == 9
    assert str(howard / "renamed.png") in paths and str(howard / "1.png") not in paths

    (library_run["photos"] / "bbt_penny" / "2.png").unlink()  # a deleted file: its face pruned
    pruned, counts, paths = _index(library_run, encoder, detector)
    assert (pruned.indexed, pruned.removed_paths, pruned.pruned_photos, pruned.pruned_faces) == (0, 1, 1, 1)
    assert counts["faces"] == 7
    assert not any(p.endswith("bbt_penny/2.png") for p in paths)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_name_a_cluster_then_new_photos_are_recognised(library_run, shared_data, capsys, tmp_path):
    g, photos = library_run["gallery"], library_run["photos"]
    out_json = tmp_path / "clusters.json"
    code, out, err = run_cli(capsys, "--gallery", g, "cluster", "--json", out_json)
    assert code == 0 and "threshold" in out, err
    entries = json.loads(out_json.read_text())
    amy = {e["cluster"] for e in entries if "bbt_amy" in e["photo"]}
    assert len(amy) == 1 and None not in amy  # Amy's faces form one cluster ...
    (cluster,) = amy
    assert all(e["cluster"] != cluster for e in entries if "bbt_amy" not in e["photo"])  # ... of nobody else
    assert set(entries[0]) == {"photo", "box", "cluster", "person"}

    code, out, _ = run_cli(capsys, "--gallery", g, "people", "name", cluster, "Amy")
    assert code == 0 and "3 faces enrolled" in out
    with FaceGallery(g) as gallery:
        assert gallery.people() == {"Amy": 3}

    shutil.copyfile(shared_data / "faces" / "bbt_amy" / "4.png", photos / "bbt_amy" / "new.png")
    shutil.copyfile(shared_data / "faces" / "bbt_raj" / "1.png", photos / "stranger.png")
    code, out, err = run_cli(capsys, "--gallery", g, "--json", "index", photos)
    assert code == 0, err
    report = json.loads(out)
    assert code == 0 and report["indexed"] == 2 and report["assigned"] == {"Amy": 1}
    with open_library(library_run["library"]) as lib:
        by_path = {f.path: f for f in lib.faces()}
    assert by_path[str(photos / "bbt_amy" / "new.png")].person == "Amy"
    assert by_path[str(photos / "stranger.png")].person is None  # "not recognised"

    code, out, _ = run_cli(capsys, "--gallery", g, "--json", "search", "Amy")
    found = json.loads(out)["photos"]
    assert code == 0 and {Path(p["photo"]).name for p in found} == {"1.png", "2.png", "3.png", "new.png"}
    assert all("bbt_amy" in p["photo"] for p in found)
    assert all(p["distance"] is None or p["distance"] <= 0.6 for p in found)

    code, out, _ = run_cli(
        capsys, "--gallery", g, "--json", "search", "--photo", shared_data / "faces" / "bbt_amy" / "5.png"
    )
    result = json.loads(out)
    assert code == 0 and result["person"] == "Amy" and len(result["photos"]) == 4

    sheet = tmp_path / "amy.png"
    code, out, _ = run_cli(capsys, "--gallery", g, "people", "show", "Amy", "--sheet", sheet)
    assert code == 0 and "4 faces" in out
    with Image.open(sheet) as im:
        assert im.size[0] == 4 * 112

    code, _, err = run_cli(capsys, "--gallery", g, "people", "show", "Nobody")
    assert code == 2 and "no faces of 'Nobody'" in err
    code, _, _ = run_cli(capsys, "--gallery", g, "search", "--photo", shared_data / "faces" / "bbt_leonard" / "1.png")
    assert code == 1  # nobody indexed looks like him


_WORKER = """
import sys
from facenet_keras.identity.gallery import FaceGallery
from facenet_keras.library.index import index_folder
from facenet_keras.library.store import open_library
with FaceGallery(sys.argv[2]) as g, open_library(sys.argv[3]) as lib:
    index_folder(sys.argv[1], lib, g, chunk=1, progress=False)
"""


def test_kill_during_index_then_resume(tmp_path, shared_data, encoder):
    import facenet_keras as fk

    photos = tmp_path / "photos"
    _copy(shared_data, photos, {"bbt_raj": [1, 2, 3, 4, 5], "bbt_sheldon": [1, 2, 3]})
    gallery, library = tmp_path / "g.sqlite", tmp_path / "g.library.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(photos), str(gallery), str(library)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done = 0

    def one_indexed() -> bool:  # the indexer's own record: a photo's contents written
        nonlocal done
        if proc.poll() is not None:
            return True  # finished (or died) before it was caught: the assertion below says which
        if library.exists():
            with sqlite3.connect(f"file:{library}?mode=ro", uri=True, timeout=5) as db:
                try:
                    done = db.execute("SELECT COUNT(*) FROM contents").fetchone()[0]
                except sqlite3.OperationalError:  # tables not created yet
                    done = 0
        return done >= 1

    try:  # a new process: TensorFlow, the models, then the first photo
        loads = startup_loads(process=True)
        wait_for(one_indexed, "the indexer to record its first photo", loads, lambda: f"{done} done", poll_s=0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 1 <= done < 8, f"the indexer was not caught mid-run ({done} of 8 photos done)"

    report = fk.index(photos, gallery, library=library, progress=False)
    with open_library(library) as lib:
        counts = lib.counts()
        faces = lib.faces()
    assert report.indexed + report.unchanged == 8 and report.indexed >= 8 - done - 1
    assert counts["photos"] == counts["contents"] == 8
    assert len(faces) == 8 and len({f.sha for f in faces}) == 8  # one face per crop, none twice
