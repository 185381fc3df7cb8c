"""The photo library's People endpoints (/v1/library) against the real app: a few people of
../shared/data/faces indexed with the library's own code, then clustered, named, merged, split and
searched through the API; thumbnails and scopes."""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from service_helpers import auth, index_faces, wait_ready

PEOPLE = {"bbt_amy": [1, 2, 3], "bbt_howard": [1, 2, 3], "bbt_penny": [1, 2]}


@pytest.fixture(scope="module")
def lib(settings, shared_data, detector, tmp_path_factory):
    """An app whose gallery (empty) has a face index beside it: 8 photos of 3 people, one face each."""
    from fastapi.testclient import TestClient

    from facenet_keras.service.app import create_app

    root = tmp_path_factory.mktemp("people")
    gallery, library = root / "photos.sqlite", root / "photos.library.sqlite"  # the default place
    report = index_faces(shared_data, root / "photos", PEOPLE, gallery, library, detector)
    assert (report.indexed, report.faces) == (8, 8)
    with TestClient(create_app(replace(settings, gallery=str(gallery))), raise_server_exceptions=False) as c:
        wait_ready(c.get)
        yield SimpleNamespace(client=c, library=library)


def who(library: Path, face_ids) -> set[str]:
    """The folders (people) of these faces' photos, read from the index itself."""
    from facenet_keras.library.store import open_library

    with open_library(library) as store:
        return {Path(f.path).parent.name for f in store.faces(ids=list(face_ids))}


def clusters_by_person(lib, keys) -> dict[str, dict]:
    listed = lib.client.get("/v1/library/clusters", headers=auth(keys["read"])).json()
    out = {}
    for c in listed["clusters"]:
        (person,) = who(lib.library, c["sample"])  # every face shown for a cluster is one person's
        assert person not in out, f"{person} is split over clusters"
        out[person] = c
    return out


def test_cluster_name_and_search_through_the_api(lib, keys):
    c, r, w = lib.client, auth(keys["read"]), auth(keys["write"])
    before = c.get("/v1/library/clusters", headers=r).json()
    assert before == {"clusters": [], "unclustered": 8, "threshold": None, "method": None}

    assert c.post("/v1/library/cluster", headers=r).status_code == 403  # a read key cannot cluster
    done = c.post("/v1/library/cluster", json={}, headers=w)
    assert done.status_code == 200, done.text
    done = done.json()
    # 8 faces: below 26, the derived cut is the encoder's 1:1 threshold, and the answer says so
    assert done["faces"] == 8 and done["threshold"] == pytest.approx(0.6) and "N = 8" in done["threshold_rule"]
    listed = c.get("/v1/library/clusters", headers=r).json()
    assert listed["threshold"] == done["threshold"] and listed["method"] == "average"
    groups = clusters_by_person(lib, keys)
    assert {p: g["faces"] for p, g in groups.items()} == {"bbt_amy": 3, "bbt_howard": 3, "bbt_penny": 2}
    assert [g["faces"] for g in listed["clusters"]] == sorted((g["faces"] for g in listed["clusters"]), reverse=True)
    amy = groups["bbt_amy"]["cluster"]

    url = f"/v1/library/clusters/{amy}/name"
    no = c.post(url, json={"name": "Amy"}, headers=r)
    assert no.status_code == 403 and no.json()["error"]["code"] == "forbidden"  # a read key cannot name
    assert c.post(url, json={"name": "  "}, headers=w).status_code == 422  # blank after stripping
    assert c.post(url, json={"name": "A\nmy"}, headers=w).status_code == 422  # control characters
    missing = c.post("/v1/library/clusters/999/name", json={"name": "Amy"}, headers=w)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_cluster"
    assert c.post("/v1/library/clusters/abc/name", json={"name": "Amy"}, headers=w).status_code == 422
    named = c.post(url, json={"name": " Amy "}, headers=w)
    assert named.status_code == 200 and named.json() == {"cluster": amy, "name": "Amy", "faces": 3}

    people = c.get("/v1/library/people", headers=r).json()["people"]
    assert [(p["name"], p["faces"], p["photos"], p["enrolled_photos"]) for p in people] == [("Amy", 3, 3, 3)]
    assert who(lib.library, people[0]["sample"]) == {"bbt_amy"}
    assert {p["name"]: p["photos"] for p in c.get("/v1/people", headers=r).json()["people"]} == {"Amy": 3}  # enrolled
    assert "bbt_amy" not in clusters_by_person(lib, keys)  # a named cluster is a person, no longer a group

    found = c.get("/v1/library/people/Amy/photos", headers=r)
    assert found.status_code == 200, found.text
    found = found.json()
    assert found["person"] == "Amy" and found["threshold"] == pytest.approx(0.6)
    # a read key sees the file names only; a write key (who runs the library) the server's paths
    assert sorted(p["photo"] for p in found["photos"]) == ["1.png", "2.png", "3.png"]
    assert all(p["how"] == "named" for p in found["photos"])
    paths = [p["photo"] for p in c.get("/v1/library/people/Amy/photos", headers=w).json()["photos"]]
    assert all(Path(p).is_absolute() and Path(p).parent.name == "bbt_amy" for p in paths), paths
    sources = {s: [p["source"] for p in c.get("/v1/people/Amy", headers=auth(keys[s])).json()["photos"]] for s in keys}
    assert sorted(sources["read"]) == ["1.png", "2.png", "3.png"] and sorted(sources["write"]) == sorted(paths), sources
    d = [p["distance"] for p in found["photos"]]
    assert all(0 < x < 0.6 for x in d) and d == sorted(d)  # to her other photos, nearest first
    assert who(lib.library, [p["face"] for p in found["photos"]]) == {"bbt_amy"}
    gone = c.get("/v1/library/people/Nobody/photos", headers=r)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_person"


def test_thumbnails_need_a_key_and_show_the_face(lib, keys, detector, caplog):
    from PIL import Image

    c = lib.client
    listed = c.get("/v1/library/clusters", headers=auth(keys["read"])).json()
    if not listed["clusters"]:
        c.post("/v1/library/cluster", json={}, headers=auth(keys["write"]))
        listed = c.get("/v1/library/clusters", headers=auth(keys["read"])).json()
    face = listed["clusters"][0]["sample"][0]
    url = f"/v1/library/faces/{face}/thumbnail"
    for headers in ({}, {"Authorization": "Bearer fk_0000.nope"}):
        denied = c.get(url, headers=headers)
        assert denied.status_code == 401 and denied.headers["content-type"] == "application/json"
    with caplog.at_level(logging.DEBUG):
        got = c.get(url + "?size=96", headers={"X-API-Key": keys["read"]})
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert "no-store" in got.headers["cache-control"]
    thumb = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB"))
    assert thumb.shape == (96, 96, 3)
    (seen,) = detector.detect(thumb)  # a face, filling most of the picture
    assert seen.box[2] > 40 and seen.box[3] > 40
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "PIL")))
    assert "/v1/library/faces/{face_id}/thumbnail" in text  # the access log names the route ...
    assert url not in text and "bbt_" not in text and keys["read"] not in text  # ... not the face, photo or key
    assert c.get("/v1/library/faces/999999/thumbnail", headers=auth(keys["read"])).status_code == 404
    for bad in ("-1", "99999999999999999999", "x"):
        assert c.get(f"/v1/library/faces/{bad}/thumbnail", headers=auth(keys["read"])).status_code == 422
    assert c.get(url + "?size=5000", headers=auth(keys["read"])).status_code == 422


def test_merge_and_split(lib, keys):
    c, r, w = lib.client, auth(keys["read"]), auth(keys["write"])
    assert c.post("/v1/library/cluster", json={}, headers=w).status_code == 200
    groups = clusters_by_person(lib, keys)
    howard, penny = groups["bbt_howard"]["cluster"], groups["bbt_penny"]["cluster"]
    body = {"into": howard, "merge": penny}
    assert c.post("/v1/library/merge", json=body, headers=r).status_code == 403
    assert c.post("/v1/library/merge", json={"into": howard, "merge": 999}, headers=w).status_code == 404
    assert c.post("/v1/library/merge", json={"into": howard, "merge": howard}, headers=w).status_code == 422
    assert c.post("/v1/library/merge", json={"into": "Nobody", "merge": "Amy"}, headers=w).status_code == 404
    merged = c.post("/v1/library/merge", json=body, headers=w)
    assert merged.status_code == 200 and f"cluster {penny}" in merged.json()["message"]
    listed = c.get("/v1/library/clusters", headers=r).json()["clusters"]
    (both,) = [g for g in listed if g["cluster"] == howard]
    assert both["faces"] == 5 and all(g["cluster"] != penny for g in listed)

    assert c.post(f"/v1/library/clusters/{howard}/split", json={}, headers=r).status_code == 403
    assert c.post("/v1/library/clusters/999/split", json={}, headers=w).status_code == 404
    split = c.post(f"/v1/library/clusters/{howard}/split", json={"threshold": 0.55}, headers=w)
    assert split.status_code == 200, split.text
    out = split.json()
    assert out["threshold"] == 0.55 and out["parts"][0] == howard and out["sizes"] == [3, 2]
    after = clusters_by_person(lib, keys)  # the parts are single people again (raises if mixed)
    assert after["bbt_howard"]["cluster"] == howard and after["bbt_penny"]["cluster"] == out["parts"][1]
    # by default the cut is 0.8 x the last clustering's: Penny's two photos (0.50 apart) part ways
    split = c.post(f"/v1/library/clusters/{out['parts'][1]}/split", headers=w).json()
    assert split["threshold"] == pytest.approx(0.48) and split["parts"] == [] and split["unclustered"] == 2


def test_without_a_library_lists_are_empty_and_changes_404(settings, keys, tmp_path):
    from fastapi.testclient import TestClient

    from facenet_keras.service.app import create_app

    bare = replace(settings, gallery=str(tmp_path / "g.sqlite"), library=str(tmp_path / "none.sqlite"))
    with TestClient(create_app(bare), raise_server_exceptions=False) as c:
        wait_ready(c.get)
        r, w = auth(keys["read"]), auth(keys["write"])
        assert c.get("/v1/library/clusters", headers=r).json()["clusters"] == []
        assert c.get("/v1/library/people", headers=r).json() == {"people": []}
        for path in ("/v1/library/cluster", "/v1/library/clusters/1/name", "/v1/library/clusters/1/split"):
            got = c.post(path, json={"name": "X"} if "name" in path else {}, headers=w)
            assert got.status_code == 404 and got.json()["error"]["code"] == "no_library", path
        assert c.get("/v1/library/faces/1/thumbnail", headers=r).status_code == 404
    assert not (tmp_path / "none.sqlite").exists()  # reading never creates an index
