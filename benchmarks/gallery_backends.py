"""Gallery backends at scale: SQLite (in-process exact), PostgreSQL + pgvector (HNSW), Milvus (milvus-lite).

    python benchmarks/gallery_backends.py [--sizes 100000,1000000] [--backends sqlite,postgres,milvus]

Synthetic galleries drawn to match real embeddings: the 188 photos of ../shared/data/faces are
encoded (dlib ResNet, cached), and a model "identity centre + per-photo Gaussian noise" is fitted so
that the same-identity and different-identity distance distributions match the real ones (both
printed as quantiles). Each gallery holds N photos of N/4 identities; queries are new photos of
enrolled identities. Per backend and size: search latency per single query (p50/p99, through the
store's own search with runner-up), recall@1 and recall@10 of the ANN rows against exact search,
enrol throughput (one-photo enrolments, 1 writer and 4 writer processes), index build time and
size, PostgreSQL's EXPLAIN, and recall at a low ef_search (the index is really used).
Figures are for this machine (2 shared cores): compare within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from facenet_keras.identity.search import ExactIndex, pairwise_distances

DIM = 128
K = 10


# ---------------------------------------------------------------------- real distances -> synthetic model
def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    from facenet_keras.evaluation.protocols import primary_embeddings
    from facenet_keras.images import list_identities

    data = Path(os.environ.get("FACENET_KERAS_SHARED_DATA", REPO.parent / "shared" / "data")) / "faces"
    people = list_identities(data)
    paths, labels = [], []
    for i, (_, files) in enumerate(sorted(people.items())):
        paths += files
        labels += [i] * len(files)
    emb, _ = primary_embeddings(paths, progress=False)
    keep = [k for k, e in enumerate(emb) if e is not None]
    return np.stack([emb[k] for k in keep]).astype(np.float32), np.asarray(labels)[keep]


def pair_distances(emb, labels):
    d = pairwise_distances(emb, emb)
    iu = np.triu_indices(len(emb), 1)
    same = labels[iu[0]] == labels[iu[1]]
    return d[iu][same], d[iu][~same]


def fit_model(same, diff) -> tuple[np.ndarray, np.ndarray]:
    """The empirical real distances the generator samples from: identity i gets a noise scale
    sigma_i = d_same / sqrt(2D) (d_same drawn from the real same-person distances, so two of its
    photos are about d_same apart) and a centre of radius R_i with R_i^2 = d_diff^2 / 2 - sigma_i^2 D
    (d_diff drawn from the real different-people distances: two random centres are ~sqrt(R_i^2 + R_j^2 +
    (sigma_i^2 + sigma_j^2) D) apart)."""
    return np.asarray(same, np.float64), np.asarray(diff, np.float64)


def synthetic(n_rows: int, fit, seed: int = 0):
    same, diff = fit
    rng = np.random.default_rng(seed)
    ids = n_rows // 4
    sigma = rng.choice(same, ids) / np.sqrt(2 * DIM)
    radius = np.sqrt(np.maximum(rng.choice(diff, ids) ** 2 / 2 - sigma ** 2 * DIM, 1e-4))
    centres = rng.normal(size=(ids, DIM))
    centres *= (radius / np.linalg.norm(centres, axis=1))[:, None]
    labels = np.repeat(np.arange(ids), 4)[:n_rows]
    emb = np.empty((n_rows, DIM), np.float32)
    for s in range(0, n_rows, 200_000):
        lab = labels[s:s + 200_000]
        emb[s:s + 200_000] = centres[lab] + sigma[lab, None] * rng.normal(size=(len(lab), DIM))
    return emb, labels, (centres.astype(np.float32), sigma)


def queries(model, n, seed=1):
    centres, sigma = model
    rng = np.random.default_rng(seed)
    who = rng.integers(0, len(centres), n)
    return (centres[who] + sigma[who, None] * rng.normal(size=(n, DIM))).astype(np.float32)


def quantiles(x, qs=(0.05, 0.25, 0.5, 0.75, 0.95)):
    return " ".join(f"{v:.3f}" for v in np.quantile(x, qs))


# ---------------------------------------------------------------------- helpers
def timed(fn, qs):
    out = []
    for q in qs:
        t = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t)
    return np.percentile(out, 50) * 1e3, np.percentile(out, 99) * 1e3


def recall(exact_idx, got_idx):
    r1 = np.mean([g[0] == e[0] for g, e in zip(got_idx, exact_idx)])
    r10 = np.mean([len(set(g[:K]) & set(e[:K])) / K for g, e in zip(got_idx, exact_idx)])
    return r1, r10


def writers_throughput(url, n_writers, per_writer):
    script = REPO / "tests" / "gallery_writer.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(script), url, "photos", f"bench{n_writers}-{k}",
                               str(per_writer), "50", str(k)],
                              stdout=subprocess.PIPE, text=True, env=env) for k in range(n_writers)]
    starts = []
    for p in procs:  # time from when all writers have opened the gallery
        p.stdout.readline()
        starts.append(time.perf_counter())
    t = max(starts)
    for p in procs:
        p.communicate()
        assert p.returncode == 0
    return n_writers * per_writer / (time.perf_counter() - t)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- backends
def bench_sqlite(emb, labels, qs, truth, tmp, args):
    from facenet_keras.identity.gallery import FaceGallery

    path = tmp / "g.sqlite"
    t = time.perf_counter()
    with FaceGallery(path) as g:
        names = [f"id{i}" for i in labels]
        for s in range(0, len(emb), 50_000):  # bulk: one add per identity group would be slow to set up
            chunk = slice(s, s + 50_000)
            by = {}
            for i, n in zip(range(chunk.start, min(chunk.stop, len(emb))), names[chunk]):
                by.setdefault(n, []).append(i)
            g.store._db.execute("BEGIN")
            for n, rows in by.items():
                g.store._db.execute("INSERT OR IGNORE INTO people(name, created) VALUES (?, 0)", (n,))
                (pid,) = g.store._db.execute("SELECT id FROM people WHERE name = ?", (n,)).fetchone()
                g.store._db.executemany("INSERT INTO photos(person_id, embedding, created) VALUES (?, ?, 0)",
                                        [(pid, emb[r].tobytes()) for r in rows])
            g.store._db.execute("COMMIT")
            if s == 0:
                g.store._set_meta("dim", str(DIM))
        load = time.perf_counter() - t
        t = time.perf_counter()
        g.search(qs[0])  # builds the in-memory matrix and index
        build = time.perf_counter() - t
        p50, p99 = timed(lambda q: g.search(q), qs[:args.queries])
    one = writers_throughput(str(path), 1, args.writes)
    four = writers_throughput(str(path), 4, args.writes // 4)
    return {"p50_ms": p50, "p99_ms": p99, "recall@1": 1.0, "recall@10": 1.0,  # exact search by construction
            "enrol_1": one, "enrol_4": four, "load_s": load, "index_build_s": build,
            "index_mb": emb.nbytes / 2**20, "note": "exact (numpy), whole matrix in memory"}


def bench_postgres(emb, labels, qs, truth, tmp, args):
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg import register_vector

    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.identity.pg_local import LocalPostgres

    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="facenet-keras-bench-pg-")))
    url = server.start()
    try:
        with psycopg.connect(server.url_for("postgres", server.info["password"], "facenet"), autocommit=True) as c:
            c.execute("ALTER SYSTEM SET maintenance_work_mem = '2GB'")
            c.execute("SELECT pg_reload_conf()")
        g = FaceGallery(url + f"?ef_search={args.ef}&candidates={K * 4}")
        g.add("seed", emb[:1])
        g.remove("seed")
        t = time.perf_counter()
        with psycopg.connect(url) as c:
            register_vector(c)
            ids = np.unique(labels)
            with c.cursor().copy("COPY people(id, name, created) FROM STDIN") as cp:
                for i in ids:
                    cp.write_row((int(i) + 1, f"id{i}", 0.0))
            with c.cursor().copy("COPY photos(person_id, embedding, created) FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "vector", "float8"])
                for i, v in zip(labels, emb):
                    cp.write_row((int(i) + 1, Vector(v), 0.0))
            c.execute("SELECT setval('people_id_seq', %s)", (int(ids.max()) + 2,))
            c.commit()
            c.execute("ANALYZE photos")
            c.commit()
        load = time.perf_counter() - t
        t = time.perf_counter()
        g.store.build_index()
        build = time.perf_counter() - t
        with psycopg.connect(url) as c:
            size = c.execute("SELECT pg_relation_size('photos_hnsw')").fetchone()[0] / 2**20
        explain = g.store.explain(qs[0])
        p50, p99 = timed(lambda q: g.search(q), qs[:args.queries])
        exact_p50, _ = timed(lambda q: g.store.search(q, exact=True), qs[:5])

        with psycopg.connect(url) as c:
            first = c.execute("SELECT min(id) FROM photos").fetchone()[0]  # row i of emb has id first + i

        def ann_rows(ef, n):
            with psycopg.connect(url) as c:
                register_vector(c)
                c.execute(f"SET hnsw.ef_search = {ef}")
                return [np.asarray([r[0] - first for r in c.execute(
                    "SELECT id FROM photos ORDER BY embedding <-> %s LIMIT %s", (Vector(q), K)).fetchall()])
                    for q in qs[:n]]
        r1, r10 = recall(truth[:args.queries], ann_rows(args.ef, args.queries))
        low = {}
        for ef in (10, 20, 40, 100, 200, 400, 800):  # recall and latency of the raw index scan against ef_search
            t = time.perf_counter()
            rows = ann_rows(ef, args.queries)
            low[ef] = (round(recall(truth[:args.queries], rows)[0], 3),
                       round((time.perf_counter() - t) / args.queries * 1e3, 2))
        g.close()
        one = writers_throughput(url, 1, args.writes)
        four = writers_throughput(url, 4, args.writes // 4)
        return {"p50_ms": p50, "p99_ms": p99, "recall@1": r1, "recall@10": r10, "enrol_1": one, "enrol_4": four,
                "load_s": load, "index_build_s": build, "index_mb": size, "exact_scan_p50_ms": exact_p50,
                "low_ef_recall@1": low, "explain": explain.splitlines()[:3],
                "note": f"HNSW m=16 ef_construction=64, ef_search={args.ef}, {K * 4} candidates re-ranked"}
    finally:
        server.remove()


def bench_milvus(emb, labels, qs, truth, tmp, args):
    import secrets

    from facenet_keras.identity.gallery import FaceGallery

    path = str(tmp / "g.milvus.db")
    g = FaceGallery(path + f"?ef_search={args.ef}&candidates={K * 4}")
    st = g.store
    g.add("seed", emb[:1])
    g.remove("seed")
    t = time.perf_counter()
    for s in range(0, len(emb), 10_000):
        batch = secrets.token_hex(16)
        rows = [{"id": int(i), "name": f"id{labels[i]}", "batch": batch, "created": 0.0, "embedding": emb[i],
                 "info": json.dumps({"pos": int(i), "source": None, "sha256": None, "box": None})}
                for i in range(s, min(s + 10_000, len(emb)))]
        st._client.insert(st._photos, rows)
        st._set_meta(f"batch:{batch}", json.dumps({"n": len(rows)}))
    load = time.perf_counter() - t
    before = rss_mb()
    t = time.perf_counter()
    g.search(qs[0])  # the first search builds what the index needs
    build = time.perf_counter() - t
    p50, p99 = timed(lambda q: g.search(q), qs[:args.queries])

    def ann_rows(ef, n):
        res = st._client.search(st._photos, data=list(qs[:n]), limit=K, anns_field="embedding",
                                search_params={"metric_type": "L2", "params": {"ef": ef}})
        return [np.asarray([h["id"] for h in row]) for row in res]
    r1, r10 = recall(truth[:args.queries], ann_rows(args.ef, args.queries))
    low = {ef: recall(truth[:args.queries], ann_rows(ef, args.queries))[0] for ef in (10, 20)}
    one_t = time.perf_counter()
    for k in range(args.writes):
        g.add(f"bench-{k % 50}", emb[k:k + 1])
    one = args.writes / (time.perf_counter() - one_t)
    g.close()
    return {"p50_ms": p50, "p99_ms": p99, "recall@1": r1, "recall@10": r10, "enrol_1": one, "enrol_4": None,
            "load_s": load, "index_build_s": build, "index_mb": max(rss_mb() - before, 0.0),
            "low_ef_recall@1": low, "note": "milvus-lite (in-process, one process per file: no 4-writer figure)"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--backends", default="sqlite,postgres,milvus")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--writes", type=int, default=200, help="one-photo enrolments timed per writer setting")
    ap.add_argument("--ef", type=int, default=100)
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)

    real, real_labels = real_embeddings()
    same, diff = pair_distances(real, real_labels)
    fit = fit_model(same, diff)
    print(f"real embeddings: {len(real)} photos of {len(set(real_labels))} people")
    syn, syn_labels, _ = synthetic(4000, fit, seed=7)
    s_same, s_diff = pair_distances(syn[:2000], syn_labels[:2000])
    print("distance quantiles (5/25/50/75/95 %):")
    print(f"  same person      real {quantiles(same)}   synthetic {quantiles(s_same)}")
    print(f"  different people real {quantiles(diff)}   synthetic {quantiles(s_diff)}")
    results = {"fit": {"real_same": quantiles(same), "synthetic_same": quantiles(s_same),
                       "real_diff": quantiles(diff), "synthetic_diff": quantiles(s_diff)}, "runs": []}
    for n in [int(x) for x in args.sizes.split(",")]:
        emb, labels, model = synthetic(n, fit)
        qs = queries(model, args.queries)
        index = ExactIndex(emb)
        truth = [index.search(q[None], K)[1][0] for q in qs]
        for backend in args.backends.split(","):
            tmp = Path(tempfile.mkdtemp(prefix="facenet-keras-bench-"))
            try:
                t = time.perf_counter()
                r = globals()[f"bench_{backend}"](emb, labels, qs, truth, tmp, args)
                r.update(backend=backend, rows=n, total_s=time.perf_counter() - t)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            results["runs"].append(r)
            four = f"{r['enrol_4']:.0f}/s" if r["enrol_4"] else "n/a"
            print(f"{backend:9s} {n:>8d} rows: search p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms, "
                  f"recall@1 {r['recall@1']:.3f} @10 {r['recall@10']:.3f}, enrol {r['enrol_1']:.0f}/s (1 writer) "
                  f"{four} (4 writers), load {r['load_s']:.1f} s, index build {r['index_build_s']:.1f} s, "
                  f"index {r['index_mb']:.0f} MB  [{r['note']}]", flush=True)
            if "low_ef_recall@1" in r:
                print(f"          recall@1 (and ms per query) by ef_search: {r['low_ef_recall@1']}")
            if "explain" in r:
                print("          EXPLAIN: " + " / ".join(s.strip() for s in r["explain"][:2])[:200])
                print(f"          the same search forced exact (sequential scan): p50 {r['exact_scan_p50_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
