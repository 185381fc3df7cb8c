"""A name the service's URLs could never reach again (``/v1/people/{name}``) is refused by the
rulebook (:func:`facenet_keras.identity.rules.check_new_name`) in every door that gives a person a
name: ``fk.*``, the CLI (enrol, rename), folder enrolment and the library's naming. The service's
door is in tests/service/test_service_leaks.py. Each refusal comes before any photo is encoded."""

from __future__ import annotations

import json
import shutil

import pytest

import facenet_keras as fk
from facenet_keras.cli import main
from facenet_keras.identity.rules import check_new_name

RULE = "must not contain '/' nor be '.' or '..'"
UNREACHABLE = ["a/b", "/", ".", "..", "  ..  ", "Grace/Hopper"]


@pytest.mark.parametrize("name", UNREACHABLE)
def test_the_rule_refuses_what_a_url_path_segment_cannot_carry(name):
    with pytest.raises(ValueError, match=RULE):
        check_new_name(name)


@pytest.mark.parametrize("name", ["a?b", "#1", "100%", "...", "a.b", "Amélie O'Brien", "a\\b"])
def test_the_rule_keeps_what_percent_encoding_carries(name):
    assert check_new_name(f"  {name} ") == name


def test_the_rule_keeps_the_older_name_rules():
    with pytest.raises(ValueError, match="control or format"):
        check_new_name("a\x1b[2Jb")
    with pytest.raises(ValueError, match="empty"):
        check_new_name("   ")


def test_python_api_door(tmp_path, any_photo):
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        with pytest.raises(ValueError, match=RULE):
            g.enroll("a/b", any_photo)
        assert len(g) == 0


def test_cli_door(tmp_path, any_photo, capsys):
    gallery = str(tmp_path / "g.sqlite")
    assert main(["--gallery", gallery, "enroll", "a/b", str(any_photo)]) == 2
    assert RULE in capsys.readouterr().err
    assert main(["--gallery", gallery, "enroll", "Alex", str(any_photo)]) == 0
    assert main(["--gallery", gallery, "gallery", "rename", "Alex", ".."]) == 2
    assert RULE in capsys.readouterr().err
    assert main(["--gallery", gallery, "gallery", "list", "--json"]) == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)["people"]] == ["Alex"]


def test_folder_door(tmp_path, any_photo, capsys):
    """A folder's name cannot hold '/', but it can hold control characters: its photos are reported
    'bad name' (a failure: exit 0, --strict exit 2), and nothing is encoded or enrolled."""
    person = tmp_path / "people" / "bad\x1bname"
    person.mkdir(parents=True)
    shutil.copy(any_photo, person / "1.jpg")
    gallery = str(tmp_path / "g.sqlite")
    assert main(["--gallery", gallery, "enroll", "--from-folder", str(tmp_path / "people"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["bad name"] == 1 and report["counts"]["enrolled"] == 0
    (photo,) = report["photos"]
    assert photo["outcome"] == "bad name" and "control or format" in photo["detail"]
    assert main(["--gallery", gallery, "enroll", "--from-folder", str(tmp_path / "people"), "--strict"]) == 2


def test_library_naming_door(tmp_path):
    from facenet_keras.library.people import name_cluster
    from facenet_keras.library.store import open_library

    with fk.FaceGallery(tmp_path / "g.sqlite") as g, open_library(tmp_path / "g.library.sqlite") as lib:
        with pytest.raises(ValueError, match=RULE):
            name_cluster(lib, g, 0, "a/b")
        assert len(g) == 0


@pytest.fixture
def any_photo(shared_data):
    """A real photo (never encoded here: every refusal comes first)."""
    return shared_data / "faces" / "alex_lacamoire" / "1.jpg"
