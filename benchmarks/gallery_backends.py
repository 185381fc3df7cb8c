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

from facenet_keras.identity.search import ExactIndex, pairwise_distances  # noqa: E402
from facenet_keras.identity.stores.milvus import CONSISTENCY  # noqa: E402

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


def fit_isotropic(same, diff) -> tuple[np.ndarray, np.ndarray]:
    """The first model (kept for comparison; the hardest case for HNSW): identity i gets a noise
    scale sigma_i = d_same / sqrt(2D) (d_same drawn from the real same-person distances) and a centre
    in a uniformly random direction at radius R_i with R_i^2 = d_diff^2 / 2 - sigma_i^2 D (d_diff drawn
    from the real different-people distances). Matches the distance histograms, but spreads the
    gallery over all 128 dimensions, which real embeddings do not."""
    return np.asarray(same, np.float64), np.asarray(diff, np.float64)


def fit_gaussian(emb, labels, same, diff):
    """The structured model (default): identity centres ~ N(mu, S_b) and photos ~ N(centre, s_i^2 S_w),
    with the between-identity covariance S_b (class means' covariance minus the within-class part,
    clipped to its positive eigenvalues: 43 dimensions from 44 people) and the pooled within-identity
    covariance S_w of the real embeddings, so the synthetic gallery lies on the real embeddings'
    low-dimensional structure. Both are then scaled so that the median same-person and
    different-people distances equal the real ones, and the per-identity spread s_i is drawn from the
    real identities' spreads (relative to their mean)."""
    emb = emb.astype(np.float64)
    ids = np.unique(labels)
    means = np.stack([emb[labels == k].mean(0) for k in ids])
    counts = np.array([(labels == k).sum() for k in ids])
    within = np.concatenate([emb[labels == k] - means[i] for i, k in enumerate(ids)])
    s_w = within.T @ within / (len(emb) - len(ids))
    s_b = np.cov(means.T) - s_w * np.mean(1 / counts)
    w, v = np.linalg.eigh(s_b)
    b_half = v * np.sqrt(np.clip(w, 0, None))  # centre = mu + b_half @ z
    w, v = np.linalg.eigh(s_w)
    w_half = v * np.sqrt(np.clip(w, 0, None))
    spread = np.array(
        [np.sqrt(((emb[labels == k] - means[i]) ** 2).sum(1).mean()) for i, k in enumerate(ids) if counts[i] > 1]
    )
    model = {"mu": emb.mean(0), "b_half": b_half, "w_half": w_half, "spread": spread / spread.mean()}
    for _ in range(3):  # match the medians (a few fixed-point steps: each scale mostly moves one median)
        e, lab, _ = synthetic_gaussian(4000, model, seed=11)
        s_same, s_diff = pair_distances(e[:2000], lab[:2000])
        a = np.median(same) / np.median(s_same)
        model["w_half"] = model["w_half"] * a
        e, lab, _ = synthetic_gaussian(4000, model, seed=11)
        s_same, s_diff = pair_distances(e[:2000], lab[:2000])
        model["b_half"] = model["b_half"] * np.sqrt(
            max(np.median(diff) ** 2 - np.median(s_same) ** 2, 1e-6)
            / max(np.median(s_diff) ** 2 - np.median(s_same) ** 2, 1e-6)
        )
    return model


def synthetic_gaussian(n_rows: int, model, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = max(n_rows // 4, 1)
    centres = model["mu"] + rng.normal(size=(ids, DIM)) @ model["b_half"].T
    scale = rng.choice(model["spread"], ids)
    labels = np.repeat(np.arange(ids), 4)[:n_rows]
    emb = np.empty((n_rows, DIM), np.float32)
    for s in range(0, n_rows, 200_000):
        lab = labels[s : s + 200_000]
        emb[s : s + 200_000] = centres[lab] + scale[lab, None] * (rng.normal(size=(len(lab), DIM)) @ model["w_half"].T)
    return emb, labels, ("gaussian", centres.astype(np.float32), scale, model["w_half"])


def synthetic(n_rows: int, fit, seed: int = 0):
    if isinstance(fit, dict):
        return synthetic_gaussian(n_rows, fit, seed)
    same, diff = fit
    rng = np.random.default_rng(seed)
    ids = n_rows // 4
    sigma = rng.choice(same, ids) / np.sqrt(2 * DIM)
    radius = np.sqrt(np.maximum(rng.choice(diff, ids) ** 2 / 2 - sigma**2 * DIM, 1e-4))
    centres = rng.normal(size=(ids, DIM))
    centres *= (radius / np.linalg.norm(centres, axis=1))[:, None]
    labels = np.repeat(np.arange(ids), 4)[:n_rows]
    emb = np.empty((n_rows, DIM), np.float32)
    for s in range(0, n_rows, 200_000):
        lab = labels[s : s + 200_000]
        emb[s : s + 200_000] = centres[lab] + sigma[lab, None] * rng.normal(size=(len(lab), DIM))
    return emb, labels, ("isotropic", centres.astype(np.float32), sigma)


def queries(model, n, seed=1):
    """New photos of enrolled identities (Q, D) and who they are."""
    rng = np.random.default_rng(seed)
    centres = model[1]
    who = rng.integers(0, len(centres), n)
    if model[0] == "gaussian":
        noise = model[2][who, None] * (rng.normal(size=(n, DIM)) @ model[3].T)
    else:
        noise = model[2][who, None] * rng.normal(size=(n, DIM))
    return (centres[who] + noise).astype(np.float32), who


def structure(emb) -> str:
    """How many dimensions the embeddings really use: principal components for 90 % of the variance,
    and the participation ratio (sum of eigenvalues)^2 / sum of squares (128 for isotropic data)."""
    w = np.linalg.eigvalsh(np.cov(np.asarray(emb, np.float64).T))[::-1]
    c = np.cumsum(w) / w.sum()
    return (
        f"{int(np.searchsorted(c, 0.9)) + 1} components hold 90 % of the variance, participation ratio "
        f"{w.sum() ** 2 / (w**2).sum():.0f}"
    )


def histogram(values, lo=0.0, hi=1.4, bins=14, width=40) -> list[str]:
    """A text histogram (no picture: these are distances between real people's embeddings)."""
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    frac = counts / max(len(values), 1)
    return [
        f"{a:4.1f}-{b:3.1f} {'#' * int(round(f / max(frac.max(), 1e-9) * width)):<{width}} {f:6.1%}"
        for a, b, f in zip(edges[:-1], edges[1:], frac)
    ]


def quantiles(x, qs=(0.05, 0.25, 0.5, 0.75, 0.95)):
    return " ".join(f"{v:.3f}" for v in np.quantile(x, qs))


# ---------------------------------------------------------------------- helpers
def timed(fn, qs, answers=None):
    out = []
    for q in qs:
        t = time.perf_counter()
        r = fn(q)
        out.append(time.perf_counter() - t)
        if answers is not None:
            answers.append(r[0].identity)
    return np.percentile(out, 50) * 1e3, np.percentile(out, 99) * 1e3


def identity_recall(answers, truth, labels) -> float:
    """How often the store names the identity of the exact nearest row (the answer that matters)."""
    return float(np.mean([a == f"id{labels[t[0]]}" for a, t in zip(answers, truth)]))


def recall(exact_idx, got_idx):
    r1 = np.mean([g[0] == e[0] for g, e in zip(got_idx, exact_idx)])
    r10 = np.mean([len(set(g[:K]) & set(e[:K])) / K for g, e in zip(got_idx, exact_idx)])
    return r1, r10


def writers_throughput(url, n_writers, per_writer):
    script = REPO / "tests" / "gallery_writer.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, "photos", f"bench{n_writers}-{k}", str(per_writer), "50", str(k)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(n_writers)
    ]
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


def legacy_exact_search(emb, sq_norms, q, k):
    """The exact search before pruning (kept here to be timed in the same run): one product over every
    row, argpartition, and the square root of the k kept rows."""
    score = q @ emb.T
    score *= -2.0
    score += sq_norms
    idx = np.argpartition(score, k - 1, axis=1)[:, :k]
    part = np.sqrt(np.maximum(np.take_along_axis(score, idx, axis=1) + np.einsum("ij,ij->i", q, q)[:, None], 0.0))
    order = np.argsort(part, axis=1, kind="stable")
    return np.take_along_axis(part, order, 1), np.take_along_axis(idx, order, 1)


def pruned_rows_read(index, q, k) -> float:
    """The share of the gallery's rows the pruned search read in full for one query."""
    from facenet_keras.identity.pruning import pruned_candidates, tolerance

    tol = tolerance(DIM, float(np.linalg.norm(q)), index._max_norm)
    return pruned_candidates(index._bound, index.embeddings, index._sq_norms, q, k, tol, index.chunk)[1] / len(index)


def legacy_pg_search(store, q):
    """PostgresStore.search through the index before it became one round trip (kept here to be timed in
    the same run): a liveness check on checkout, BEGIN, two SET LOCALs, the index scan (vectors as
    text, the limit a parameter), the runner-up scan when the candidates hold one person, COMMIT."""
    from pgvector import Vector

    from facenet_keras.identity.stores.postgres import _np
    from facenet_keras.identity.stores.remote import rerank

    with store._pool.connection() as conn:
        store._pool.check_connection(conn)
        with conn.transaction():
            ef = max(store.options["ef_search"], store.options["candidates"])
            conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            qv = Vector(q)
            rows = conn.execute(
                "SELECT p.name, f.embedding FROM (SELECT person_id, embedding FROM photos ORDER BY embedding <-> %s "
                "LIMIT %s) f JOIN people p ON p.id = f.person_id",
                (qv, store.options["candidates"]),
            ).fetchall()
            if len({r[0] for r in rows}) == 1:
                rows += conn.execute(
                    "SELECT p.name, f.embedding FROM (SELECT person_id, embedding FROM photos WHERE person_id <> "
                    "(SELECT id FROM people WHERE name = %s) ORDER BY embedding <-> %s LIMIT 1) f "
                    "JOIN people p ON p.id = f.person_id",
                    (rows[0][0], qv),
                ).fetchall()
    return rerank(q, np.stack([_np(r[1]) for r in rows]), [r[0] for r in rows])


# ---------------------------------------------------------------------- kept galleries (--keep-data / --reuse)
def kept_dir(args, backend: str, n_rows: int) -> Path | None:
    """Where a kept gallery of this backend, model and size lives (None: a throwaway one)."""
    base = args.keep_data or args.reuse
    return Path(base).resolve() / f"{backend}-{args.model}-{n_rows}" if base else None


def write_kept(folder: Path, args, n_rows: int, built: dict) -> None:
    """What a --reuse run needs to check that the kept gallery is the one it would build (bench.json)."""
    info = {"rows": n_rows, "model": args.model, "seed": 0, **built}
    (folder / "bench.json").write_text(json.dumps(info, indent=1))


def check_kept(folder: Path, args, n_rows: int) -> dict:
    """The kept gallery's build figures; refuses a folder that holds another model or size."""
    info_file = folder / "bench.json"
    if not info_file.exists():
        sys.exit(f"--reuse: no kept gallery in {folder} (build it first with --keep-data {args.reuse})")
    info = json.loads(info_file.read_text())
    if info["rows"] != n_rows or info["model"] != args.model:
        sys.exit(f"--reuse: {folder} holds {info['rows']} rows of model {info['model']}, not {n_rows} of {args.model}")
    return info


# ---------------------------------------------------------------------- backends
def bench_sqlite(emb, labels, qs, truth, tmp, args):
    from facenet_keras.identity.gallery import FaceGallery

    path = tmp / "g.sqlite"
    t = time.perf_counter()
    with FaceGallery(path) as g:
        g.store._create()  # the file is created at the first write; this bulk load writes underneath
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
                g.store._db.executemany(
                    "INSERT INTO photos(person_id, embedding, created) VALUES (?, ?, 0)",
                    [(pid, emb[r].tobytes()) for r in rows],
                )
            g.store._db.execute("COMMIT")
            if s == 0:
                g.store._set_meta("dim", str(DIM))
        load = time.perf_counter() - t
        t = time.perf_counter()
        g.search(qs[0])  # builds the in-memory matrix and index
        build = time.perf_counter() - t
        load_avg = os.getloadavg()[0]
        answers, new_t, old_t, plain_t, same = [], [], [], [], 0
        index, k = g.store._index, g.store._k
        for q in qs[: args.queries]:  # the three methods interleaved, query by query: the same load for each
            t = time.perf_counter()
            answers.append(g.search(q)[0].identity)
            new_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            old = legacy_exact_search(index.embeddings, index._sq_norms, q[None], k)
            old_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search(q[None], k, prune=False)
            plain_t.append(time.perf_counter() - t)
            same += bool(np.array_equal(old[1], index.search(q[None], k)[1]))
        p50, p99 = np.percentile(new_t, 50) * 1e3, np.percentile(new_t, 99) * 1e3
        read = [pruned_rows_read(index, q, k) for q in qs[: min(20, args.queries)]] if index.pruned else [1.0]
        load_avg = (load_avg + os.getloadavg()[0]) / 2
    one = writers_throughput(str(path), 1, args.writes) if args.writes else float("nan")
    four = writers_throughput(str(path), 4, args.writes // 4) if args.writes else float("nan")
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "recall@1": 1.0,
        "recall@10": 1.0,  # exact search by construction
        "identity_recall@1": identity_recall(answers, truth, labels),
        "enrol_1": one,
        "enrol_4": four,
        "load_s": load,
        "index_build_s": build,
        "index_mb": emb.nbytes / 2**20 * (1 + (index._bound.rank / DIM if index.pruned else 0.0)),
        "note": "exact (numpy), whole matrix in memory"
        + (f" + {index._bound.rank} principal coordinates per row" if index.pruned else ""),
        "exact_methods": {
            "load_average": round(load_avg, 1),
            "store_search_pruned_ms": [round(float(p50), 2), round(float(p99), 2)],
            "old_one_product_ms": [round(float(np.percentile(old_t, q)) * 1e3, 2) for q in (50, 99)],
            "new_plain_product_ms": [round(float(np.percentile(plain_t, q)) * 1e3, 2) for q in (50, 99)],
            "same_rows_as_old": f"{same}/{len(new_t)}",
            "rows_read_in_full": f"{np.mean(read):.2%} (r={index._bound.rank if index.pruned else DIM})",
            "k": k,
        },
    }


def bench_postgres(emb, labels, qs, truth, tmp, args):
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg import register_vector

    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.identity.stores.pg_local import LocalPostgres

    kept = kept_dir(args, "postgres", len(emb))
    if args.keep_data and kept.exists():
        sys.exit(f"--keep-data: {kept} exists; search it with --reuse {args.keep_data}, or delete it to rebuild")
    server = LocalPostgres(kept or Path(tempfile.mkdtemp(prefix="facenet-keras-bench-pg-")))
    if args.reuse:
        built = check_kept(kept, args, len(emb))
    url = server.start()
    admin = server.url_for("postgres", server.info["password"], "facenet")
    try:
        if args.reuse:  # the gallery built by an earlier --keep-data run: straight to the searches
            g = FaceGallery(url + f"?ef_search={args.ef}&candidates={K * 4}")
            return bench_postgres_search(g, url, admin, built, labels, qs, truth, args)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("ALTER SYSTEM SET maintenance_work_mem = '2GB'")  # the 1M graph (~0.8 GB) stays in memory
            c.execute(f"ALTER SYSTEM SET max_parallel_maintenance_workers = {os.cpu_count() or 2}")  # parallel build
            c.execute("ALTER SYSTEM SET shared_buffers = '2GB'")  # index + heap (1.4 GB at 1M) in the server's cache
        server.stop()  # shared_buffers takes a restart
        url = server.start()
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
        g.store.build_index(m=args.m, ef_construction=args.ef_construction)
        build = time.perf_counter() - t
        with psycopg.connect(url) as c:
            size = c.execute("SELECT pg_relation_size('photos_hnsw')").fetchone()[0] / 2**20
        built = {"load_s": load, "index_build_s": build, "index_mb": size, "m": args.m}
        built["ef_construction"] = args.ef_construction
        if kept:
            write_kept(kept, args, len(emb), built)
        return bench_postgres_search(g, url, admin, built, labels, qs, truth, args)
    finally:
        if kept:
            server.stop()  # the data stay for --reuse
        else:
            server.remove()


def bench_postgres_search(g, url, admin, built, labels, qs, truth, args):
    """The search half of the PostgreSQL benchmark (also run alone on a kept gallery by --reuse)."""
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg import register_vector

    with psycopg.connect(admin, autocommit=True) as c:  # a serving database holds its index in memory
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        t = time.perf_counter()
        pages = c.execute("SELECT pg_prewarm('photos_hnsw') + pg_prewarm('photos')").fetchone()[0]
        print(f"          prewarmed {pages} pages (index + table) in {time.perf_counter() - t:.1f} s", flush=True)
    explain = g.store.explain(qs[0])
    for q in qs[:10]:  # a first use of each pooled connection (prepared statements, settings): untimed
        g.search(q), legacy_pg_search(g.store, q)
    answers, new_t, old_t, same = [], [], [], 0
    for q in qs[: args.queries]:  # the store's search and the old one interleaved: the same load for each
        t = time.perf_counter()
        m = g.search(q)[0]
        new_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        old = legacy_pg_search(g.store, q)
        old_t.append(time.perf_counter() - t)
        answers.append(m.identity)
        same += m == old
    p50, p99 = np.percentile(new_t, 50) * 1e3, np.percentile(new_t, 99) * 1e3
    old_ms = [round(float(np.percentile(old_t, v)) * 1e3, 2) for v in (50, 99)]
    print(
        f"          store search p50/p99 {p50:.2f} / {p99:.2f} ms; the old search (6 round trips) in the same run "
        f"{old_ms[0]} / {old_ms[1]} ms; same answers {same}/{len(new_t)}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    id_r1 = identity_recall(answers, truth, labels)
    exact_p50, _ = timed(lambda q: g.store.search(q, exact=True), qs[:5])

    with psycopg.connect(url) as c:
        first = c.execute("SELECT min(id) FROM photos").fetchone()[0]  # row i of emb has id first + i

    def ann_rows(ef, n):
        with psycopg.connect(url) as c:
            register_vector(c)
            c.execute(f"SET hnsw.ef_search = {ef}")
            return [
                np.asarray(
                    [
                        r[0] - first
                        for r in c.execute(
                            "SELECT id FROM photos ORDER BY embedding <-> %s LIMIT %s", (Vector(q), K)
                        ).fetchall()
                    ]
                )
                for q in qs[:n]
            ]

    r1, r10 = recall(truth[: args.queries], ann_rows(args.ef, args.queries))

    def server_ms(ef, n=20):
        """The server's own execution time of the index scan (EXPLAIN ANALYZE), without the client."""
        with psycopg.connect(url) as c:
            register_vector(c)
            c.execute(f"SET hnsw.ef_search = {ef}")
            out = []
            for q in qs[:n]:
                plan = c.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM photos ORDER BY embedding <-> %s LIMIT %s",
                    (Vector(q), K * 4),
                ).fetchone()[0]
                out.append(plan[0]["Execution Time"])
            return float(np.median(out))

    low = {}
    for ef in args.sweep:  # per ef_search: the raw index scan's row recall@1/@10, and the store's own
        rows = ann_rows(ef, args.queries)  # search (candidates re-ranked): identity recall@1, p50/p99
        g.store.options["ef_search"] = ef
        answers = []
        e50, e99 = timed(lambda q: g.search(q), qs[: args.queries], answers)
        low[ef] = {
            "row_recall@1": round(recall(truth[: args.queries], rows)[0], 3),
            "row_recall@10": round(recall(truth[: args.queries], rows)[1], 3),
            "identity_recall@1": round(identity_recall(answers, truth, labels), 3),
            "p50_ms": round(e50, 2),
            "p99_ms": round(e99, 2),
            "server_p50_ms": round(server_ms(ef), 2),
        }
        print(f"          ef_search {ef:4d}: {low[ef]}", flush=True)
    g.store.options["ef_search"] = args.ef
    g.close()
    one = writers_throughput(url, 1, args.writes) if args.writes else float("nan")
    four = writers_throughput(url, 4, args.writes // 4) if args.writes else float("nan")
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "recall@1": r1,
        "recall@10": r10,
        "identity_recall@1": id_r1,
        "enrol_1": one,
        "enrol_4": four,
        "load_s": built["load_s"],
        "index_build_s": built["index_build_s"],
        "index_mb": built["index_mb"],
        "exact_scan_p50_ms": exact_p50,
        "old_search_ms": old_ms,
        "old_same_answers": f"{same}/{len(new_t)}",
        "load_average_search": os.getloadavg()[0],
        "ef_sweep": low,
        "explain": explain.splitlines()[:3],
        "note": f"HNSW m={built.get('m', args.m)} ef_construction={built.get('ef_construction', args.ef_construction)}"
        f", ef_search={args.ef}, {K * 4} candidates re-ranked" + (" (kept gallery, --reuse)" if args.reuse else ""),
    }


def bench_milvus(emb, labels, qs, truth, tmp, args):
    from facenet_keras.identity.gallery import FaceGallery

    server = bool(args.milvus_url)  # a Milvus server (milvus://host:port), else milvus-lite in a temp file
    kept = kept_dir(args, "milvus", len(emb))
    if args.keep_data and kept.exists():
        sys.exit(f"--keep-data: {kept} exists; search it with --reuse {args.keep_data}, or delete it to rebuild")
    if kept and not server:
        sys.exit("--keep-data / --reuse with --backends milvus need a server: --milvus-url milvus://HOST:PORT")
    name = f"bench_{args.model}_{len(emb)}"
    path = f"{args.milvus_url.rstrip('/')}/{name}" if server else str(tmp / "g.milvus.db")
    g = FaceGallery(path + f"?ef_search={args.ef}&candidates={K * 4}")
    st = g.store
    try:
        if args.reuse:
            built = check_kept(kept, args, len(emb))
        else:
            built = milvus_load(g, emb, labels, qs, server, args)
            if kept:
                kept.mkdir(parents=True)
                write_kept(kept, args, len(emb), built)
        return bench_milvus_search(g, built, emb, labels, qs, truth, server, args)
    finally:
        if server and not kept:
            for c in (st._photos, st._metac, st._crops):
                st._client.drop_collection(c)
        g.close()


def milvus_load(g, emb, labels, qs, server, args) -> dict:
    """Bulk load (the store's own row format, one commit marker per insert) and, on a server, the wait
    until the HNSW index covers every row."""
    import secrets

    st = g.store
    g.add("seed", emb[:1])
    g.remove("seed")
    t = time.perf_counter()
    step = args.milvus_batch
    for s in range(0, len(emb), step):
        if args.milvus_flush and s and s % args.milvus_flush == 0:
            st._client.flush(st._photos)  # seal what was written so far (the 100k load hung without it)
            print(f"          milvus: {s} rows in {time.perf_counter() - t:.0f} s", flush=True)
        batch = secrets.token_hex(16)
        rows = [
            {
                "id": int(i),
                "name": f"id{labels[i]}",
                "batch": batch,
                "created": 0.0,
                "embedding": emb[i],
                "info": json.dumps({"pos": int(i), "source": None, "sha256": None, "box": None}),
            }
            for i in range(s, min(s + step, len(emb)))
        ]
        st._client.insert(st._photos, rows)
        st._set_meta(f"batch:{batch}", json.dumps({"n": len(rows)}))
    load = time.perf_counter() - t
    before = rss_mb()
    t = time.perf_counter()
    if server:  # seal the segments; the server builds their HNSW indexes in the background
        st._client.flush(st._photos)
        milvus_wait_index(st, len(emb), settled=False)
    g.search(qs[0])  # the first search loads what the index needs
    build = time.perf_counter() - t
    return {"load_s": load, "index_build_s": build, "index_mb": max(rss_mb() - before, 0.0)}


def milvus_wait_index(st, n_rows: int, *, settled: bool) -> None:
    """Wait until the server's HNSW indexes cover every row; ``settled``: also until the re-indexing of
    segments merged by compaction is done (it runs in the background for many minutes after a bulk
    load, and after a restart; timings taken beside it measure the re-index as much as the search)."""
    while True:
        info = st._client.describe_index(st._photos, "embedding")
        if info.get("indexed_rows", 0) >= n_rows and not (settled and info.get("pending_index_rows")):
            return
        print(
            f"          milvus index: {info.get('indexed_rows')} / {n_rows} rows, "
            f"{info.get('pending_index_rows')} rows waiting for a re-index",
            flush=True,
        )
        time.sleep(10)


def bench_milvus_search(g, built, emb, labels, qs, truth, server, args):
    """The search half of the Milvus benchmark (also run alone on a kept gallery by --reuse)."""
    st = g.store
    if server:
        milvus_wait_index(st, len(emb), settled=True)
    for q in qs[:10]:
        g.search(q)
    answers = []
    p50, p99 = timed(lambda q: g.search(q), qs[: args.queries], answers)
    id_r1 = identity_recall(answers, truth, labels)
    load_avg = os.getloadavg()[0]
    levels = {}  # the store's search at other ?consistency= levels, the same queries, the same run
    for level in args.milvus_consistency:
        st.options["consistency"] = level
        for q in qs[:10]:
            g.search(q)
        got = []
        lp50, lp99 = timed(lambda q: g.search(q), qs[: args.queries], got)
        levels[level] = {
            "p50_ms": round(float(lp50), 2),
            "p99_ms": round(float(lp99), 2),
            "identity_recall@1": identity_recall(got, truth, labels),
            "load_average": os.getloadavg()[0],
        }
        print(f"          store search at consistency={level}: {levels[level]}", flush=True)
    st.options["consistency"] = "strong"

    def raw(consistency):  # the index search alone, one query per request (no meta read, no re-rank)
        return timed(
            lambda q: st._client.search(
                st._photos,
                data=[q],
                limit=K * 4,
                anns_field="embedding",
                search_params={"metric_type": "L2", "params": {"ef": max(args.ef, K * 4)}},
                consistency_level=consistency,
            ),
            qs[: args.queries],
        )

    raw_ms = {c: [round(float(v), 2) for v in raw(c)] for c in ("Strong", "Bounded")}
    print(f"          raw index search p50/p99 ms by consistency level: {raw_ms}; load average {load_avg:.1f}")

    def ann_rows(ef, n):
        res = st._client.search(
            st._photos,
            data=list(qs[:n]),
            limit=K,
            anns_field="embedding",
            search_params={"metric_type": "L2", "params": {"ef": ef}},
        )
        return [np.asarray([h["id"] for h in row]) for row in res]

    r1, r10 = recall(truth[: args.queries], ann_rows(args.ef, args.queries))
    low = {
        ef: {"row_recall@1": round(recall(truth[: args.queries], ann_rows(ef, args.queries))[0], 3)}
        for ef in args.sweep
    }
    one_t = time.perf_counter()
    for k in range(args.writes):
        g.add(f"bench-{k % 50}", emb[k : k + 1])
    one = args.writes / (time.perf_counter() - one_t) if args.writes else float("nan")
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "recall@1": r1,
        "recall@10": r10,
        "identity_recall@1": id_r1,
        "enrol_1": one,
        "enrol_4": None,
        "load_s": built["load_s"],
        "index_build_s": built["index_build_s"],
        "index_mb": built["index_mb"],
        "ef_sweep": low,
        "raw_search_ms": raw_ms,
        "store_search_by_consistency": levels,
        "load_average_search": load_avg,
        "note": (
            f"Milvus server at {args.milvus_url} (index built by the server; MB = client RSS only)"
            if server
            else "milvus-lite (in-process, one process per file: no 4-writer figure)"
        ),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--backends", default="sqlite,postgres,milvus")
    ap.add_argument(
        "--model",
        default="gaussian",
        choices=["gaussian", "isotropic"],
        help="synthetic identities: a Gaussian fit of the real embeddings' structure (default), or "
        "uniformly random directions in 128-D (the first model, the hardest case for HNSW)",
    )
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--writes", type=int, default=200, help="one-photo enrolments timed per writer setting (0: skip)")
    ap.add_argument("--ef", type=int, default=100)
    ap.add_argument("--sweep", default="10,20,40,100,200", help="ef_search values to sweep")
    ap.add_argument("--m", type=int, default=16, help="HNSW m (PostgreSQL)")
    ap.add_argument(
        "--ef-construction", type=int, default=128, help="HNSW ef_construction (PostgreSQL; the store's default)"
    )
    ap.add_argument("--milvus-batch", type=int, default=10_000, help="rows per insert into milvus-lite")
    ap.add_argument("--milvus-flush", type=int, default=0, help="flush milvus-lite every this many rows (0: never)")
    ap.add_argument(
        "--keep-data",
        metavar="DIR",
        help="keep each built server gallery under DIR/BACKEND-MODEL-ROWS (stopped, not deleted) for --reuse",
    )
    ap.add_argument(
        "--reuse",
        metavar="DIR",
        help="skip the load and index build: run only the search and recall measurements on the galleries "
        "kept by an earlier --keep-data DIR run (same --model and --sizes)",
    )
    ap.add_argument(
        "--milvus-url",
        metavar="milvus://HOST:PORT",
        help="benchmark a Milvus server (e.g. the embedded standalone started by benchmarks/milvus_server.py) "
        "instead of milvus-lite",
    )
    ap.add_argument(
        "--milvus-consistency",
        default="bounded,session",
        help="also time the store's Milvus search at these ?consistency= levels (after the default, strong)",
    )
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)
    if args.keep_data and args.reuse:
        ap.error("--keep-data builds a gallery, --reuse searches a kept one: give one of them")
    if (args.keep_data or args.reuse) and args.writes:
        ap.error("--keep-data / --reuse need --writes 0 (the enrolment timing would add rows to the kept gallery)")
    if (args.keep_data or args.reuse) and set(args.backends.split(",")) - {"postgres", "milvus"}:
        ap.error("--keep-data / --reuse are for the server backends: --backends postgres and/or milvus")
    args.sweep = [int(x) for x in args.sweep.split(",") if x]
    args.milvus_consistency = [x.strip().lower() for x in args.milvus_consistency.split(",") if x.strip()]
    if set(args.milvus_consistency) - set(CONSISTENCY):
        ap.error(f"--milvus-consistency: levels are {', '.join(CONSISTENCY)}")
    print(
        f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f} on "
        f"{os.cpu_count()} cores",
        flush=True,
    )

    real, real_labels = real_embeddings()
    same, diff = pair_distances(real, real_labels)
    fits = {"isotropic": fit_isotropic(same, diff), "gaussian": fit_gaussian(real, real_labels, same, diff)}
    fit = fits[args.model]
    print(f"real embeddings: {len(real)} photos of {len(set(real_labels))} people; {structure(real)}")
    results = {
        "fit": {"real_same": quantiles(same), "real_diff": quantiles(diff)},
        "runs": [],
        "load_average": os.getloadavg(),
    }
    print("distance quantiles (5/25/50/75/95 %):")
    print(f"  same person      real      {quantiles(same)}")
    print(f"  different people real      {quantiles(diff)}")
    hists = {"real": (same, diff)}
    for name, f in fits.items():
        syn, syn_labels, _ = synthetic(4000, f, seed=7)
        s_same, s_diff = pair_distances(syn[:2000], syn_labels[:2000])
        hists[name] = (s_same, s_diff)
        print(f"  same person      {name:9s} {quantiles(s_same)}")
        print(f"  different people {name:9s} {quantiles(s_diff)}")
        print(f"  {name}: {structure(syn)}")
        results["fit"][name] = {"same": quantiles(s_same), "diff": quantiles(s_diff), "structure": structure(syn)}
    for k, title in ((0, "same person"), (1, "different people")):
        print(f"histogram of {title} distances: real | gaussian | isotropic")
        cols = [histogram(hists[m][k], width=20) for m in ("real", "gaussian", "isotropic")]
        for a, b, c in zip(*cols):
            print(f"  {a} | {b[8:]} | {c[8:]}")
    for n in [int(x) for x in args.sizes.split(",")]:
        emb, labels, model = synthetic(n, fit)
        qs, _ = queries(model, args.queries)
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
            r["model"] = args.model
            print(
                f"{backend:9s} {n:>8d} rows ({args.model}): search p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} "
                f"ms, identity recall@1 {r['identity_recall@1']:.3f}, row recall@1 {r['recall@1']:.3f} "
                f"@10 {r['recall@10']:.3f}, enrol {r['enrol_1']:.0f}/s (1 writer) "
                f"{four} (4 writers), load {r['load_s']:.1f} s, index build {r['index_build_s']:.1f} s, "
                f"index {r['index_mb']:.0f} MB  [{r['note']}]",
                flush=True,
            )
            if "exact_methods" in r:
                print(f"          exact search, interleaved per query (p50/p99 ms): {r['exact_methods']}")
            if "ef_sweep" in r:
                print(f"          by ef_search: {r['ef_sweep']}")
            if "explain" in r:
                print("          EXPLAIN: " + " / ".join(s.strip() for s in r["explain"][:2])[:200])
                print(f"          the same search forced exact (sequential scan): p50 {r['exact_scan_p50_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
