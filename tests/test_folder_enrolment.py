"""Folder enrolment (``FaceGallery.enroll_folder`` / ``facenet-keras enroll --from-folder``) and the
``compare`` command, on the bundled public-domain portraits: every outcome and exit code."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import facenet_keras as fk
from facenet_keras.cli import main
from facenet_keras.demo import changed_copy, sample_portraits


def with_small_face(photo: np.ndarray, other: np.ndarray, scale: float = 0.25) -> np.ndarray:
    """``photo`` with a small copy of ``other`` in its bottom-right corner: two faces, ``photo``'s the main one."""
    h, w = other.shape[:2]
    small = np.asarray(Image.fromarray(other).resize((int(w * scale), int(h * scale)), Image.LANCZOS))
    out = photo.copy()
    out[-small.shape[0] :, -small.shape[1] :] = small
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """ROOT/<person>/<photo>: grace (two photos, a byte-identical copy, a JPEG re-save: another picture),
    eileen (one photo, one with a small second face, a blank picture, a file that is not an image)."""
    root = tmp_path_factory.mktemp("people")
    people = sample_portraits()
    grace, eileen = people["Grace Hopper"], people["Eileen Collins"]
    (root / "grace").mkdir()
    (root / "eileen").mkdir()
    Image.fromarray(grace).save(root / "grace" / "1.png")
    Image.fromarray(changed_copy(grace)).save(root / "grace" / "2.png")
    shutil.copy(root / "grace" / "1.png", root / "grace" / "3.png")
    Image.fromarray(grace).save(root / "grace" / "4.jpg", quality=92)
    Image.fromarray(eileen).save(root / "eileen" / "1.png")
    Image.fromarray(with_small_face(changed_copy(eileen, brightness=0.9), grace)).save(root / "eileen" / "2.png")
    Image.fromarray(np.full((120, 120, 3), 200, np.uint8)).save(root / "eileen" / "3.png")
    (root / "eileen" / "4.jpg").write_text("not an image")
    (root / "notes.txt").write_text("files directly in ROOT are ignored")
    return root


EXPECTED = {
    "grace/1.png": "enrolled",
    "grace/2.png": "enrolled",
    "grace/3.png": "duplicate",
    "grace/4.jpg": "enrolled",
    "eileen/1.png": "enrolled",
    "eileen/2.png": "several faces",
    "eileen/3.png": "no face",
    "eileen/4.jpg": "unreadable",
}


def outcomes(report, root) -> dict[str, str]:
    return {str(p.path)[len(str(root)) + 1 :]: p.outcome for p in report.photos}


def test_enroll_folder_reports_every_photo(folder, encoder):
    with fk.FaceGallery(":memory:") as g:
        report = g.enroll_folder(folder, progress=False)
        assert outcomes(report, folder) == EXPECTED
        assert g.people() == {"eileen": 1, "grace": 3} == report.people()
        assert {p.path for p in report.failures} == {
            str(folder / k) for k, v in EXPECTED.items() if v in ("several faces", "no face", "unreadable")
        }
        # running it again adds nothing: every enrolled photo is now a duplicate
        again = g.enroll_folder(folder, progress=False)
        assert [p.outcome for p in again.photos].count("duplicate") == 5 and len(g.photos()) == 4
    with fk.FaceGallery(":memory:") as g:
        report = g.enroll_folder(folder, progress=False, several_faces="main")
        assert outcomes(report, folder)["eileen/2.png"] == "enrolled" and g.people()["eileen"] == 2


def test_enroll_from_folder_command(folder, tmp_path, capsys, encoder):
    gallery = tmp_path / "g.sqlite"
    code = main(["--gallery", str(gallery), "enroll", "--from-folder", str(folder), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["counts"] == {
        "enrolled": 4,
        "no face": 1,
        "several faces": 1,
        "unusable face": 0,
        "duplicate": 1,
        "unreadable": 1,
        "bad name": 0,
    }
    assert {p["path"][len(str(folder)) + 1 :]: p["outcome"] for p in payload["photos"]} == EXPECTED

    code = main(["--gallery", str(gallery), "enroll", "--from-folder", str(folder), "--strict"])
    out = capsys.readouterr().out
    assert code == 2 and "no face: " in out and "5 duplicate" in out
    assert main(["--gallery", str(gallery), "enroll", "--from-folder", str(folder / "grace"), "--strict"]) == 2
    capsys.readouterr()
    # a folder without identity folders, a missing folder, NAME with --from-folder: bad input
    assert main(["--gallery", str(gallery), "enroll", "--from-folder", str(tmp_path / "absent")]) == 2
    assert main(["--gallery", str(gallery), "enroll", "grace", "--from-folder", str(folder)]) == 2
    assert main(["--gallery", str(gallery), "enroll", "grace"]) == 2


def test_compare_command(folder, capsys, encoder):
    grace, grace2, eileen = folder / "grace" / "1.png", folder / "grace" / "2.png", folder / "eileen" / "1.png"
    assert main(["compare", str(grace), str(grace2)]) == 0
    assert capsys.readouterr().out.startswith("MATCH")
    assert main(["compare", str(grace), str(eileen), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["match"] is False and result["distance"] > result["threshold"] == fk.DEFAULT_THRESHOLD
    # at a threshold above the distance, the same pair matches
    assert main(["compare", str(grace), str(eileen), "--threshold", str(result["distance"] + 0.01)]) == 0
    capsys.readouterr()
    for bad in (folder / "eileen" / "3.png", folder / "eileen" / "4.jpg", folder / "nobody.jpg"):
        assert main(["compare", str(grace), str(bad)]) == 2
        assert "error" in capsys.readouterr().err


def test_compare_api_uses_the_main_face_and_says_how_many(folder, encoder):
    c = fk.compare(folder / "eileen" / "2.png", folder / "eileen" / "1.png")
    assert c.faces_found == (2, 1) and c.match and c.distance <= c.threshold
