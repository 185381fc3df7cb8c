"""The evaluate / calibrate / evaluate-identification commands and the embedding cache, on a few
real LFW photos (plus one photo without a face, to check that failures are counted)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from facenet_keras.cli import main
from facenet_keras.evaluation.embedding_cache import EmbeddingCache, file_digest
from facenet_keras.evaluation.protocols import read_pairs

# ------------------------------------------------------------------------------ cache (no TF)


def test_cache_roundtrip_and_corrupt_entry_is_rebuilt(tmp_path):
    photo = tmp_path / "a.bin"
    photo.write_bytes(b"some photo bytes")
    cache = EmbeddingCache("model-x|pipeline-y", root=tmp_path / "home")
    calls = []

    def compute(path):
        calls.append(path)
        return np.arange(4, dtype=np.float32)

    first = cache.get_or_compute(photo, compute)
    np.testing.assert_array_equal(first, np.arange(4))
    again = cache.get_or_compute(photo, compute)
    np.testing.assert_array_equal(again, first)
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)

    # the same bytes under another name hit; another namespace (model) does not
    copy = tmp_path / "b.bin"
    copy.write_bytes(photo.read_bytes())
    np.testing.assert_array_equal(cache.get(copy), first)
    with pytest.raises(KeyError):
        EmbeddingCache("model-z|pipeline-y", root=tmp_path / "home").get(photo)

    # corrupt the entry on disk: it is dropped and recomputed, never a crash
    entry = cache._entry(file_digest(photo))
    entry.write_bytes(b"\x93NUMPY garbage")
    assert cache.get_or_compute(photo, compute) is not None and len(calls) == 2
    np.testing.assert_array_equal(np.load(entry), np.arange(4))
    # no temporary files left behind by the atomic writes
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".tmp-")]


def test_cache_stores_no_face(tmp_path):
    photo = tmp_path / "a.bin"
    photo.write_bytes(b"x")
    cache = EmbeddingCache("m", root=tmp_path)
    assert cache.get_or_compute(photo, lambda p: None) is None
    assert cache.get(photo) is None  # a cached "no face", not a miss


def test_cache_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACENET_KERAS_HOME", str(tmp_path))
    assert EmbeddingCache("m").directory.parent == tmp_path / "embeddings"


# ------------------------------------------------------------------------------ pairs file


def test_read_pairs_validation(tmp_path, shared_data):
    root = shared_data / "lfw-dev"
    good = "images/Abel_Pacheco/Abel_Pacheco_0001.jpg"
    cases = {
        "path1,path2\n": "missing column",
        f"path1,path2,same\n{good},{good},maybe\n": "'same' must be",
        f"path1,path2,same\n{good},images/nobody.jpg,1\n": "not found",
        "path1,path2,same\n": "no pairs",
    }
    for text, message in cases.items():
        f = tmp_path / "p.csv"
        f.write_text(text)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            read_pairs(f, root)
    f.write_text(f"path1,path2,same,fold\n{good},{good},true,A\n{good},{good},0,B\n")
    p1, p2, same, folds = read_pairs(f, root)
    assert list(same) == [True, False] and list(folds) == ["A", "B"]
    assert p1[0] == str(root / good)


def test_bad_input_exits_2(tmp_path, capsys):
    f = tmp_path / "p.csv"
    f.write_text("a,b\n")
    assert main(["evaluate", str(f), "--root", str(tmp_path)]) == 2
    assert "missing column" in capsys.readouterr().err


# ------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def small_pairs(shared_data, tmp_path_factory):
    """10 LFW pairs (5 same, 5 different, with a fold column) + 1 same-labelled pair whose second
    photo (scikit-image's coffee cup) has no face."""
    from PIL import Image
    from skimage import data as skdata

    root = shared_data / "lfw-dev"
    with open(root / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    same = [r for r in rows if r["same"] == "1"][:5]
    diff = [r for r in rows if r["same"] == "0"][:5]
    tmp = tmp_path_factory.mktemp("pairs")
    coffee = tmp / "coffee.jpg"
    Image.fromarray(skdata.coffee()).resize((300, 200)).save(coffee)
    out = tmp / "pairs.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path1", "path2", "same", "fold"])
        for i, r in enumerate(same + diff):
            w.writerow([r["path1"], r["path2"], r["same"], "AB"[i % 2]])
        w.writerow([same[0]["path1"], str(coffee), 1, "A"])
    return out, root, coffee


@pytest.fixture(scope="module")
def evaluated(small_pairs, tmp_path_factory):
    pairs, root, coffee = small_pairs
    out = tmp_path_factory.mktemp("eval")
    code = main(
        ["evaluate", str(pairs), "--root", str(root), "--json", str(out / "r.json"), "--plot", str(out / "r.png")]
    )
    return code, json.loads((out / "r.json").read_text()), out


def test_evaluate_reports_and_counts_the_failed_pair(evaluated, small_pairs):
    code, r, out = evaluated
    assert code == 0
    for key in (
        "accuracy",
        "accuracy_std",
        "threshold",
        "auc",
        "eer",
        "tar_at_far_1e-2",
        "tar_at_far_1e-3",
        "pairs",
        "failed",
    ):
        assert key in r, key
    assert r["pairs"] == 11 and r["failed"] == 1
    assert list(r["failed_photos"]) == [str(small_pairs[2])]
    assert r["fold_source"] == "fold column" and r["folds"] == 2
    assert list(r["by_kind"]) == ["photo"] and r["by_kind"]["photo"]["pairs"] == 11
    # the failed genuine pair ranks below every impostor: AUC = 5/6 * (AUC of the 10 LFW pairs)
    assert 0.8 < r["auc"] <= 5 / 6 + 1e-9
    # fold A holds 6 pairs, one of them failed: an error whatever the threshold
    assert r["fold_accuracies"][0] <= 5 / 6 + 1e-9
    assert 0.75 <= r["accuracy"] <= (5 / 6 + 1.0) / 2 + 1e-9
    assert 0.3 < r["threshold"] < 0.9  # dlib scale: same person below ~0.6
    png = out / "r.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_second_run_uses_the_cache(evaluated, small_pairs, monkeypatch, capsys):
    from facenet_keras.faces.pipeline import FacePipeline

    def no_encoding(*args, **kwargs):
        raise AssertionError("embeddings should come from the cache")

    monkeypatch.setattr(FacePipeline, "encode_images", no_encoding)  # what the protocol calls on a miss
    pairs, root, _ = small_pairs
    assert main(["--json", "evaluate", str(pairs), "--root", str(root)]) == 0
    again = json.loads(capsys.readouterr().out)
    first = evaluated[1]
    for key in ("accuracy", "threshold", "auc", "eer", "failed"):
        assert again[key] == pytest.approx(first[key])


def test_calibrate_saves_threshold_in_gallery(evaluated, small_pairs, tmp_path, capsys):
    from facenet_keras.identity.gallery import FaceGallery

    pairs, root, _ = small_pairs
    gallery = tmp_path / "g.sqlite"
    assert (
        main(
            [
                "--gallery",
                str(gallery),
                "calibrate",
                str(pairs),
                "--root",
                str(root),
                "--target-far",
                "1e-3",
                "--save",
                "--json",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    assert r["far"] == 0.0 and r["saved_to"] == str(gallery)
    with FaceGallery(gallery) as g:
        assert g.threshold == pytest.approx(r["threshold"])
    # 5 different-person pairs: FAR <= 1e-3 means below the closest of them; the failed genuine
    # pair can never be accepted
    assert r["impostor_pairs"] == 5 and r["failed"] == 1
    assert 0.5 <= r["tar"] <= 5 / 6 + 1e-9
    assert 0.2 < r["threshold"] < 1.0
    # for a gallery of 10 the per-comparison target is 10x stricter: the threshold cannot loosen
    assert (
        main(
            ["calibrate", str(pairs), "--root", str(root), "--target-far", "0.3", "--for-gallery-size", "10", "--json"]
        )
        == 0
    )
    r10 = json.loads(capsys.readouterr().out)
    assert r10["per_comparison_far"] == pytest.approx(1 - 0.7**0.1)
    assert main(["calibrate", str(pairs), "--root", str(root), "--target-far", "0.3", "--json"]) == 0
    r1 = json.loads(capsys.readouterr().out)
    assert r1["far"] <= 0.3 and r10["far"] <= r10["per_comparison_far"]
    assert r10["threshold"] <= r1["threshold"]


@pytest.fixture(scope="module")
def identities_root(shared_data, tmp_path_factory):
    """ROOT/<person>/<photo> built from LFW photos (links, no copies): 4 people with 2-3 photos
    and 2 people with one photo (not enrolled)."""
    images = shared_data / "lfw-dev" / "images"
    people = sorted((p for p in images.iterdir() if p.is_dir()), key=lambda p: p.name)
    multi = [p for p in people if len(list(p.glob("*.jpg"))) >= 3][:4]
    single = [p for p in people if len(list(p.glob("*.jpg"))) == 1][:2]
    root = tmp_path_factory.mktemp("ids")
    for person in multi + single:
        (root / person.name).mkdir()
        for photo in sorted(person.glob("*.jpg"))[:3]:
            (root / person.name / photo.name).symlink_to(photo)
    (root / "notes.txt").write_text("files directly in ROOT are ignored")
    return root, [p.name for p in multi], [p.name for p in single]


def test_evaluate_identification(identities_root, tmp_path, capsys):
    root, multi, single = identities_root
    plot = tmp_path / "far_k.png"
    assert main(["evaluate-identification", str(root), "--json", str(tmp_path / "id.json"), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    r = json.loads((tmp_path / "id.json").read_text())
    assert r["enrolled"] == 4 and r["unenrolled_people"] == 2
    assert r["mated_probes"] == 4 * 2 and r["non_mated_probes"] == 2
    assert r["failed_probes"] == 0
    # LFW photos of the same person are well within dlib's 0.6, strangers are not
    assert r["rank1"] == 1.0 and r["dir"] >= 0.75
    # the rates against a plain loop over the probes (first photo enrolled, nearest template wins)
    expected = _open_set_by_hand(root, r["threshold"])
    for key in ("dir", "rank1", "false_reject_rate", "misidentification_rate", "fpir"):
        assert r[key] == pytest.approx(expected[key]), key
    curve = r["false_accept_vs_k"]
    assert curve["sizes"] == [1, 2, 3]  # strangers see 4 identities, enrolled probes 3 others
    assert all(b >= a for a, b in zip(curve["rate"], curve["rate"][1:]))
    # the same stranger false-accept target needs a stricter threshold for 1:3 than for 1:1
    cal = r["calibrated"]
    assert cal["threshold_1toK"] <= cal["threshold_1to1"]
    assert cal["curve_1toK"]["rate"][-1] <= cal["target_far"] + 1e-12
    assert cal["curve_1to1"]["rate"][0] <= cal["target_far"] + 1e-12
    assert "detection-and-identification rate" in text
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_identification_holds_out_people(identities_root, capsys):
    root, multi, single = identities_root
    assert (
        main(["--json", "evaluate-identification", "--unenrolled", "1", "--fpir", "0.5", "--fpir", "0", str(root)]) == 0
    )
    r = json.loads(capsys.readouterr().out)
    assert r["enrolled"] == 3 and r["non_mated_probes"] == 2 + 3
    assert set(r["dir_at_fpir"]) == {"0.5", "0"}
    assert r["dir_at_fpir"]["0"]["dir"] <= r["dir_at_fpir"]["0.5"]["dir"]
    assert main(["--json", "evaluate-identification", str(root), "--exclude", single[0]]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["people"] == 5 and r["non_mated_probes"] == 1 and r["excluded"] == [single[0]]
    assert main(["evaluate-identification", str(root), "--exclude", "nobody"]) == 2
    assert "no such person" in capsys.readouterr().err


def _open_set_by_hand(root, tau):
    """Open-set rates of ROOT/<person>/<photo> computed the obvious way: enrol each person with
    several photos from their first, probe with every other photo; d <= tau accepts."""
    from facenet_keras.evaluation.protocols import primary_embeddings
    from facenet_keras.images import list_identities

    people = {n: [str(p) for p in photos] for n, photos in list_identities(root).items()}
    emb, _ = primary_embeddings([p for photos in people.values() for p in photos], progress=False)
    emb = iter(emb)
    emb = {p: next(emb) for photos in people.values() for p in photos}
    gallery = {n: emb[photos[0]] for n, photos in people.items() if len(photos) >= 2}
    mated = {"identified": 0, "rank1": 0, "rejected": 0, "wrong": 0, "n": 0}
    alarms = strangers = 0
    for name, photos in people.items():
        for p in photos:
            if name in gallery and p == photos[0]:
                continue
            dist = {g: float(np.linalg.norm(emb[p] - e)) for g, e in gallery.items()}
            nearest = min(dist, key=dist.get)
            accepted = dist[nearest] <= tau
            if name in gallery:
                mated["n"] += 1
                mated["rank1"] += nearest == name
                mated["identified"] += accepted and nearest == name
                mated["rejected"] += not accepted
                mated["wrong"] += accepted and nearest != name
            else:
                strangers += 1
                alarms += accepted
    n = mated["n"]
    return {
        "dir": mated["identified"] / n,
        "rank1": mated["rank1"] / n,
        "false_reject_rate": mated["rejected"] / n,
        "misidentification_rate": mated["wrong"] / n,
        "fpir": alarms / strangers,
    }
