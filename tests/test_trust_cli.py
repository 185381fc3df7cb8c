"""Issue 11 (trustworthy answers), the command-line side: items 2, 3, 7, 9, 10, 11 by name, then a
hostile-input suite: each bad command line must exit with its code, say one line on stderr, and
leave every file as it was."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import facenet_keras
from facenet_keras.cli import main
from facenet_keras.demo import changed_copy, sample_portraits

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(facenet_keras.__file__)))  # the code under test


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
        Image.fromarray(image).save(paths[key], quality=95)
    return paths


@pytest.fixture(scope="module")
def enrolled(photos, tmp_path_factory, encoder, detector):
    """A gallery file with Grace enrolled (copied by tests that change it)."""
    import facenet_keras as fk

    path = tmp_path_factory.mktemp("enrolled") / "g.sqlite"
    with fk.FaceGallery(path) as g:
        g.enroll("grace", photos["grace"], detector=detector)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def tree(folder) -> dict:
    """relative path -> (mode, sha256) of every file and folder under ``folder``."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            p = os.path.join(root, name)
            out[os.path.relpath(p, folder) + "/"] = stat.S_IMODE(os.stat(p).st_mode)
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = (
                    stat.S_IMODE(os.stat(p).st_mode),
                    hashlib.sha256(f.read()).hexdigest(),
                )
    return out


def copy_gallery(src, folder):
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / "g.sqlite"
    dst.write_bytes(src.read_bytes())
    return dst


# ------------------------------------------------------------------------------------ item 2
def test_item2_trained_model_carries_the_threshold_calibrated_on_its_validation_split(
    shared_data, tmp_path, capsys, photos, detector
):
    import keras

    from facenet_keras.evaluation.metrics import calibrate
    from facenet_keras.identity.search import pairwise_distances
    from facenet_keras.models.metadata import read_metadata, write_metadata
    from facenet_keras.training.data import load_chips, split_identities

    root = tmp_path / "people"
    for person in ("bbt_amy", "bbt_howard", "bbt_leonard", "bbt_penny", "bbt_raj"):
        (root / person).mkdir(parents=True)
        for photo in sorted((shared_data / "faces" / person).iterdir()):
            os.symlink(photo, root / person / photo.name)
    out = tmp_path / "model.keras"
    code, printed, _ = run(
        capsys,
        "train",
        root,
        "--model",
        "nn4_small2",
        "--width",
        "0.25",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "-P",
        "3",
        "-K",
        "3",
        "--val-fraction",
        "0.4",
        "--quiet",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        out,
    )
    assert code == 0 and "its threshold" in printed
    stored = read_metadata(out)["threshold"]
    # recompute on the same validation identities, through the saved model
    chips = load_chips(root, cache_dir=tmp_path / "cache", progress=False)
    counts = {n: int((chips.labels == i).sum()) for i, n in enumerate(chips.names)}
    _, val_names = split_identities(chips.names, 0.4, 0, counts)
    val = chips.subset(val_names)
    model = keras.saving.load_model(out, compile=False)
    x = np.asarray(keras.ops.image.resize(np.asarray(val.chips, np.float32), (96, 96), antialias=True))
    emb = np.asarray(model(x, training=False))
    i, j = np.triu_indices(len(val.labels), k=1)
    d = pairwise_distances(emb, emb)[i, j]
    assert stored == pytest.approx(calibrate(d, val.labels[i] == val.labels[j], 1e-3), abs=1e-4)

    g = tmp_path / "g.sqlite"
    assert run(capsys, "enroll", "grace", photos["grace"], "--model", out, "--gallery", g, "--force")[0] == 0
    code, printed, _ = run(capsys, "verify", photos["eileen"], "grace", "--model", out, "--gallery", g, "--json")
    assert json.loads(printed)["threshold"] == pytest.approx(stored, abs=1e-5)  # its own, not dlib's 0.6
    write_metadata(out, threshold=None)  # a model without a threshold refuses to decide
    code, _, err = run(capsys, "verify", photos["eileen"], "grace", "--model", out, "--gallery", g)
    assert code == 2 and "carries no distance threshold" in err and "calibrate" in err


# ------------------------------------------------------------------------------------ item 3 (CLI)
def test_item3_cli_names_are_normalised_and_printed_escaped(photos, enrolled, tmp_path, capsys):
    g = copy_gallery(enrolled, tmp_path / "g")
    code, out, err = run(capsys, "--gallery", g, "enroll", "  Eileen Collins  ", photos["eileen"])
    assert code == 0 and "'Eileen Collins'" in out, err
    code, out, _ = run(capsys, "--gallery", g, "enroll", "Eileen Collins", photos["eileen"])
    assert code == 0 and "already enrolled" in out and "nothing new" in out
    db = sqlite3.connect(g)  # a name written by other software, trying to forge a line and clear the screen
    db.execute("UPDATE people SET name = ? WHERE name = 'grace'", ("grace\n  mallory: #9 x.jpg\x1b[2J",))
    db.commit()
    db.close()
    code, out, _ = run(capsys, "--gallery", g, "gallery", "list")
    assert code == 0 and "\x1b" not in out and len(out.splitlines()) == 3  # header + 2 people
    assert "'grace\\n  mallory: #9 x.jpg\\x1b[2J'" in out


# ------------------------------------------------------------------------------------ item 7 (CLI)
def test_item7_read_only_commands_never_create_a_gallery(photos, tmp_path, capsys):
    missing = tmp_path / "typo" / "gallery.sqlite"
    for argv in (["gallery", "list"], ["verify", photos["grace"], "grace"], ["recognize", photos["grace"]]):
        code, _, err = run(capsys, "--gallery", missing, *argv)
        assert code == 2 and "no gallery at" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ item 9
def test_item9_internal_errors_exit_3_with_one_line(photos, enrolled, tmp_path, capsys, monkeypatch):
    from facenet_keras.identity import recognition

    def broken(*args, **kwargs):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(recognition, "recognize_batch", broken)
    g = copy_gallery(enrolled, tmp_path / "g")
    code, out, err = run(capsys, "--gallery", g, "recognize", photos["grace"])
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "internal error: RuntimeError: planted bug" in err and "Traceback" not in err
    code, _, err = run(capsys, "--gallery", g, "recognize", photos["grace"], "--verbose")
    assert code == 3 and "Traceback" in err
    monkeypatch.setenv("FACENET_KERAS_DEBUG", "1")
    assert "Traceback" in run(capsys, "--gallery", g, "recognize", photos["grace"])[2]


# ------------------------------------------------------------------------------------ item 10
def test_item10_tensorflow_prints_nothing(photos):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "FACENET_KERAS_DEBUG"))}
    env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = (
        "import facenet_keras as fk, sys\n"
        f"faces = fk.encode({str(photos['grace'])!r})\n"
        "from facenet_keras.cli import main\n"
        f"sys.exit(main(['detect', {str(photos['grace'])!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    assert "1 face(s)" in done.stdout


# ------------------------------------------------------------------------------------ item 11
def test_item11_cli_details(photos, enrolled, tmp_path, capsys):
    from facenet_keras.cli import build_parser, json_file_arguments

    parser = build_parser()
    args = parser.parse_args(json_file_arguments(["evaluate", "--json", "pairs.csv", "--folds", "5"]))
    assert args.pairs == "pairs.csv" and args.json is True and args.folds == 5
    args = parser.parse_args(json_file_arguments(["evaluate", "pairs.csv", "--json", "out/figures.json"]))
    assert args.pairs == "pairs.csv" and args.json == "out/figures.json"
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("facenet-keras ")

    def positionals(p):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from positionals(sub)
            elif not action.option_strings:
                yield p.prog, action

    missing = [f"{prog} {a.dest}" for prog, a in positionals(parser) if not a.help]
    assert missing == []
    code, _, err = run(capsys, "--gallery", enrolled, "detect", photos["grace"])
    assert code == 2 and "--gallery does nothing for 'detect'" in err
    code, out, _ = run(capsys, "detect", photos["grace"], "--annotate", tmp_path / "a" / "b" / "faces.png")
    assert code == 0 and "landmarks: left_eye (" in out and (tmp_path / "a" / "b" / "faces.png").is_file()
    g = copy_gallery(enrolled, tmp_path / "g")
    out_png = tmp_path / "out" / "new" / "dir" / "x.png"
    code, out, _ = run(capsys, "--gallery", g, "recognize", photos["grace2"], "--annotate", out_png)
    assert code == 0 and out_png.is_file()
    import facenet_keras as fk

    with fk.FaceGallery(g) as gal:
        gal.threshold = 0.123456789
    code, out, _ = run(capsys, "--gallery", g, "gallery", "list")
    assert "threshold 0.1235" in out and "0.123456789" not in out


# ------------------------------------------------------------------------------------ hostile input
def _foreign(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()


def _corrupt(path, sql):
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


HOSTILE = {
    # name: (setup(tmp, gallery, photos) -> argv, expected exit code, words in the message)
    "name with a newline": (lambda t, g, p: ["--gallery", g, "enroll", "eve\nmallory", p["eileen"]], 2, "control"),
    "name with an escape sequence": (
        lambda t, g, p: ["--gallery", g, "enroll", "eve\x1b[2J", p["eileen"]],
        2,
        "control",
    ),
    "name with a zero-width joiner": (
        lambda t, g, p: ["--gallery", g, "gallery", "rename", "grace", "gr\u200dace"],
        2,
        "control",
    ),
    "name too long": (lambda t, g, p: ["--gallery", g, "enroll", "x" * 300, p["eileen"]], 2, "at most 200"),
    "empty name": (lambda t, g, p: ["--gallery", g, "enroll", "   ", p["eileen"]], 2, "empty"),
    "photo is a folder": (lambda t, g, p: ["--gallery", g, "enroll", "eve", t], 2, ""),
    "photo path with a newline": (
        lambda t, g, p: ["--gallery", g, "enroll", "eve", t / "no\nphoto.jpg"],
        2,
        "photo.jpg",
    ),
    "photo is not an image": (lambda t, g, p: ["--gallery", g, "enroll", "eve", g], 2, ""),
    "unknown person": (lambda t, g, p: ["--gallery", g, "verify", p["grace"], "nobody"], 2, "not enrolled"),
    "unknown photo id": (lambda t, g, p: ["--gallery", g, "gallery", "remove", "--photo", "999"], 2, "999"),
    "face index out of range": (
        lambda t, g, p: ["--gallery", g, "enroll", "eve", p["eileen"], "--face", "3"],
        2,
        "does not exist",
    ),
    "gallery is a folder": (lambda t, g, p: ["--gallery", t, "gallery", "list"], 2, "folder"),
    "gallery is a text file": (
        lambda t, g, p: (
            (t / "notes.txt").write_text("hello " * 300) and ["--gallery", t / "notes.txt", "gallery", "list"]
        ),
        2,
        "not a facenet-keras gallery",
    ),
    "gallery is a foreign database": (
        lambda t, g, p: _foreign(t / "other.db") or ["--gallery", t / "other.db", "enroll", "eve", p["eileen"]],
        2,
        "untouched",
    ),
    "unknown gallery scheme": (lambda t, g, p: ["--gallery", "ftp://x/g", "gallery", "list"], 2, "scheme"),
    "corrupt threshold": (
        lambda t, g, p: (
            _corrupt(g, "INSERT OR REPLACE INTO meta VALUES ('threshold', 'x')")
            or ["--gallery", g, "verify", p["grace2"], "grace"]
        ),
        2,
        "'threshold'",
    ),
    "corrupt embedding": (
        lambda t, g, p: (
            _corrupt(g, "UPDATE photos SET embedding = x'00'") or ["--gallery", g, "verify", p["grace2"], "grace"]
        ),
        2,
        "photo row 1",
    ),
    "annotation in a file's place": (
        lambda t, g, p: (
            (t / "f").write_text("x") and ["--gallery", g, "recognize", p["grace"], "--annotate", t / "f" / "x.png"]
        ),
        2,
        "cannot write",
    ),
    "annotation of an unknown type": (
        lambda t, g, p: ["--gallery", g, "recognize", p["grace"], "--annotate", t / "x.xyz"],
        2,
        "unknown image type",
    ),
    "gallery option on a command without one": (
        lambda t, g, p: ["--gallery", g, "detect", p["grace"]],
        2,
        "does nothing",
    ),
    "evaluate with a missing pairs file": (lambda t, g, p: ["evaluate", "--json", t / "pairs.csv"], 2, "pairs.csv"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input(case, photos, enrolled, tmp_path, capsys):
    setup, expected, words = HOSTILE[case]
    g = copy_gallery(enrolled, tmp_path / "gal")
    argv = setup(tmp_path, g, photos)
    before = tree(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == expected, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert words in err, err
    assert tree(tmp_path) == before


def _sqlite_failure(monkeypatch, kind):
    """Make the gallery's SQLite fail as a full disk, a read-only file system or a lock would."""
    from facenet_keras.identity.stores import sqlite as sqlite_store

    real = sqlite_store.SQLiteStore._configure

    def configure(self):
        real(self)
        if kind == "full":  # SQLite's own SQLITE_FULL: no page may be added
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count = {pages}")
        elif kind == "readonly":  # SQLite's own SQLITE_READONLY
            self._db.execute("PRAGMA query_only = ON")

    monkeypatch.setattr(sqlite_store.SQLiteStore, "_configure", configure)
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", 0.2)


@pytest.mark.parametrize(
    "kind,words", [("full", "no space left"), ("readonly", "read-only"), ("locked", "locked by another process")]
)
def test_hostile_sqlite_failures(kind, words, photos, enrolled, tmp_path, capsys, monkeypatch):
    g = copy_gallery(enrolled, tmp_path / "gal")
    _sqlite_failure(monkeypatch, kind)
    holder = None
    if kind == "locked":
        holder = sqlite3.connect(g, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    before = tree(tmp_path) if holder is None else None
    try:
        commands = [["enroll", "eileen", photos["eileen"]]]
        if kind != "full":  # a rename fits in the pages the file already has
            commands.append(["gallery", "rename", "grace", "Grace"])
        for argv in commands:
            code, _, err = run(capsys, "--gallery", g, *argv)
            assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
            assert "rollback" not in err
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    if before is not None:
        assert tree(tmp_path) == before


def test_hostile_permission_denied_on_create(photos, tmp_path, capsys, monkeypatch):
    from facenet_keras.identity.stores import sqlite as sqlite_store

    def denied(path):  # as mkdir in a folder the user may not write
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sqlite_store, "private_dir", denied)
    code, _, err = run(capsys, "--gallery", tmp_path / "sub" / "g.sqlite", "enroll", "eve", photos["eileen"])
    assert code == 2 and "Permission denied" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
