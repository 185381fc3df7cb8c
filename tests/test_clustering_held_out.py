"""The held-out clustering protocol (``benchmarks/clustering_held_out.py``) in short, inside ``make
test``: faces/ (186 photos, 44 people) through the pipeline, its identities cut in two halves, each
half resampled at a few sizes and mixes and estimated at 1,000 to 7,000 faces, the fast profile's
shipped cut judged on people it was never chosen on, beside two broken rules it must beat."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.evaluation import held_out as HO
from facenet_keras.library import clustering as C

SIZES = (40, 80, None)
FLOOR = 0.95  # the target of the full benchmark; the shipped rule holds it here by 0.03 or more


@pytest.fixture(scope="module")
def faces_embeddings(shared_data):
    """(people, embeddings) of the main face of every photo of faces/ (cached for the session, so
    test_library_clustering_real's encoding of the same photos is not repeated)."""
    from facenet_keras.evaluation.protocols import primary_embeddings
    from facenet_keras.images import list_identities

    identities = list_identities(shared_data / "faces")
    paths = [p for photos in identities.values() for p in photos]
    people = np.array([name for name, photos in identities.items() for _ in photos])
    embeddings, problems = primary_embeddings(paths, progress=False)
    assert not problems
    return people, np.stack(embeddings)


def _scores(people, x, rules):
    """Per half of faces/'s identities (seed 0): rule -> (worst measured F, worst estimated F)."""
    out = []
    for rows in HO.split_halves(people, np.random.default_rng(0)):
        cells = HO.evaluate(x[rows], people[rows], rules, resamples=5, seed=0, sizes=SIZES)
        out.append({name: (HO.worst(c)[2], HO.worst(c, measured=False)[2]) for name, c in cells.items()})
    return out


@pytest.mark.slow
def test_shipped_cut_holds_on_held_out_people_where_broken_cuts_do_not(faces_embeddings):
    people, x = faces_embeddings
    cal = C.ENCODER_CALIBRATION
    rules = {
        "shipped": lambda n: C.clustering_threshold(n, cal),
        # the 1:1 verification threshold whatever N: every face meets more strangers within it as
        # the set grows, so the estimates at thousands of faces merge strangers
        "1:1 threshold": lambda n: cal.threshold,
        # a cut at the typical distance between two photos of one person: splits half of them
        "genuine mean": lambda n: cal.genuine_mean,
    }
    halves = _scores(people, x, rules)
    print(halves)
    for half in halves:  # measured (seed 0): A 0.994 / 0.973, B 1.000 / 0.983
        measured, estimated = half["shipped"]
        assert measured >= FLOOR and estimated >= FLOOR
        assert half["1:1 threshold"][1] < 0.9  # 0.78 and 0.76 at ~7,000 faces
        assert half["genuine mean"][0] < 0.9  # 0.85 and 0.71
    # the halves are disjoint in people, and the protocol measures both sizes and estimates
    a, b = HO.split_halves(people, np.random.default_rng(0))
    assert not set(people[a]) & set(people[b]) and len(a) + len(b) == len(people)


def test_protocol_resamples_fill_sizes_and_mixes_as_documented():
    people = np.array([f"p{i}" for i in range(60) for _ in range(1 + (i % 7 == 0) * 6 + (i % 3 == 0))])
    drawn = {(mix, size): rows for mix, size, rows in HO.draws(people, 1, 0, sizes=(20, None))}
    lfw = drawn[("lfw", "20")]
    assert len(lfw) == 20 and len(set(lfw)) == 20
    pairs = people[drawn[("pairs", "20")]]
    names, counts = np.unique(pairs, return_counts=True)
    assert len(pairs) == 20 and np.sum(counts == 2) == 8 and np.all(counts <= 2)  # 16 in pairs, 4 singles
    large = people[drawn[("large", "20")]]
    assert np.max(np.unique(large, return_counts=True)[1]) >= 5
    assert len(drawn[("lfw", "all")]) == len(people)
