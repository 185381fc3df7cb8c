"""The command line: enroll, verify, recognize --annotate, detect, gallery; JSON and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facenet_keras.cli import main
from facenet_keras.demo import changed_copy, sample_portraits


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    people = sample_portraits()
    paths = {}
    for key, image in [
        ("grace", people["Grace Hopper"]),
        ("eileen", people["Eileen Collins"]),
        ("grace2", changed_copy(people["Grace Hopper"])),
    ]:
        paths[key] = folder / f"{key}.jpg"
        Image.fromarray(image).save(paths[key])
    paths["text"] = folder / "notes.jpg"
    paths["text"].write_text("not an image")
    paths["blank"] = folder / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 200, np.uint8)).save(paths["blank"])
    return paths


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_round_trip(photos, tmp_path, capsys, encoder):
    g = tmp_path / "cli.sqlite"
    code, out, _ = run(capsys, "--gallery", g, "enroll", "grace", photos["grace"])
    assert code == 0 and "enrolled 'grace'" in out

    code, out, _ = run(capsys, "--gallery", g, "verify", photos["grace2"], "grace", "--json")
    result = json.loads(out)
    assert code == 0 and result["match"] is True and result["distance"] <= result["threshold"]

    code, out, _ = run(capsys, "verify", photos["eileen"], "grace", "--gallery", g)  # options after the command
    assert code == 1 and out.startswith("NO MATCH")

    annotated = tmp_path / "annotated.jpg"
    code, out, _ = run(
        capsys, "--gallery", g, "--json", "recognize", photos["grace2"], photos["eileen"], "--annotate", annotated
    )
    result = json.loads(out)
    assert code == 0
    assert [f["identity"] for f in result[0]["faces"]] == ["grace"]
    assert [f["identity"] for f in result[1]["faces"]] == [None]
    assert (tmp_path / "annotated-1.jpg").is_file() and (tmp_path / "annotated-2.jpg").is_file()

    code, out, _ = run(capsys, "--gallery", g, "recognize", photos["eileen"])
    assert code == 1 and "not recognised" in out

    code, out, _ = run(capsys, "--gallery", g, "gallery", "rename", "grace", "Grace Hopper")
    assert code == 0
    code, out, _ = run(capsys, "--gallery", g, "gallery", "list", "--json")
    listing = json.loads(out)
    assert [p["name"] for p in listing["people"]] == ["Grace Hopper"]
    code, out, _ = run(capsys, "--gallery", g, "gallery", "remove", "Grace Hopper")
    assert code == 0
    code, out, err = run(capsys, "--gallery", g, "verify", photos["grace"], "Grace Hopper")
    assert code == 2 and "not enrolled" in err


def test_cli_bad_input_exit_2(photos, tmp_path, capsys):
    g = tmp_path / "cli.sqlite"
    code, _, err = run(capsys, "--gallery", g, "enroll", "x", photos["text"])
    assert code == 2 and "notes.jpg" in err
    code, _, err = run(capsys, "--gallery", g, "enroll", "x", tmp_path / "missing.jpg")
    assert code == 2 and "missing.jpg" in err
    code, _, err = run(capsys, "--gallery", g, "enroll", "x", photos["blank"])
    assert code == 2 and "no face" in err
    assert run(capsys, "--gallery", g, "gallery", "list", "--json")[1].count('"name"') == 0


def test_cli_detect(photos, capsys):
    code, out, _ = run(capsys, "detect", photos["grace"], "--json")
    (entry,) = json.loads(out)
    (face,) = entry["faces"]
    assert code == 0 and face["confidence"] > 0.9 and len(face["landmarks"]) == 5
    code, out, _ = run(capsys, "detect", photos["blank"])
    assert code == 1 and "0 face(s)" in out
