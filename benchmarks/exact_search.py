"""In-process exact search at scale: the one-product scan (before pruning) against the pruned scan.

    python benchmarks/exact_search.py [--sizes 100000,1000000] [--model gaussian] [--queries 200]

The galleries are gallery_backends.py's synthetic ones (N photos of N/4 identities; ``gaussian``
is shaped like the real embeddings of ../shared/data/faces, ``isotropic`` uses all 128 dimensions,
the pruning's worst case). Per size: the time to build the index (basis fit and projection), then per
single query, interleaved so that each method sees the same load: the old scan (one product over
every row), the new index (pruned where it pays), and the new index forced to one product; the k
nearest rows with k = rows_for_runner_up (what the store asks for). Prints p50/p99, whether the rows
equal the old scan's, and the share of rows the pruned scan read in full. ``--fit FILE.npz`` reads
the fitted model (``--save-fit`` writes it) so that a machine without TensorFlow can run this.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gallery_backends as gb  # noqa: E402

from facenet_keras.identity.search import ExactIndex, rows_for_runner_up  # noqa: E402


def load_fit(args):
    if args.fit:
        f = np.load(args.fit)
        if args.model == "isotropic":
            return f["same"], f["diff"]
        return {k: f[k] for k in ("mu", "b_half", "w_half", "spread")}
    real, labels = gb.real_embeddings()
    same, diff = gb.pair_distances(real, labels)
    model = gb.fit_gaussian(real, labels, same, diff)
    if args.save_fit:  # statistics of the real embeddings only (means, covariances, distances), no photo
        np.savez(args.save_fit, same=same, diff=diff, **model)
    return model if args.model == "gaussian" else gb.fit_isotropic(same, diff)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--model", default="gaussian", choices=["gaussian", "isotropic"])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--prune",
        default="auto",
        choices=["auto", "always"],
        help="auto: the index decides (size, structure); always: fit the bound whatever the size",
    )
    ap.add_argument("--fit", help="read the fitted model from this .npz (written by --save-fit)")
    ap.add_argument("--save-fit")
    args = ap.parse_args(argv)
    fit = load_fit(args)
    print(
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable), numpy {np.__version__}, model {args.model}",
        flush=True,
    )
    for n in [int(x) for x in args.sizes.split(",")]:
        emb, labels, model = gb.synthetic(n, fit)
        qs, _ = gb.queries(model, args.queries)
        k = rows_for_runner_up(labels)
        t = time.perf_counter()
        index = ExactIndex(emb, prune=True if args.prune == "always" else None)
        build = time.perf_counter() - t
        load0 = os.getloadavg()[0]
        old_t, new_t, plain_t, same = [], [], [], 0
        for q in qs:
            q = q[None]
            t = time.perf_counter()
            old = gb.legacy_exact_search(index.embeddings, index._sq_norms, q, k)
            old_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            new = index.search(q, k)
            new_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search(q, k, prune=False)
            plain_t.append(time.perf_counter() - t)
            same += bool(np.array_equal(old[1], new[1]))
        read = [gb.pruned_rows_read(index, q, k) for q in qs[:50]] if index.pruned else [1.0]
        load = (load0 + os.getloadavg()[0]) / 2

        def ms(ts):
            return f"{np.percentile(ts, 50) * 1e3:6.2f} / {np.percentile(ts, 99) * 1e3:6.2f}"

        rank = index._bound.rank if index._bound is not None else None
        print(
            f"{n:>8d} rows, k={k}: old one product {ms(old_t)} ms | new {ms(new_t)} ms | new forced plain "
            f"{ms(plain_t)} ms (p50 / p99) | same rows as old {same}/{len(qs)} | pruned: {index.pruned} "
            f"(r={rank}, rows read in full {np.mean(read):.2%}) | build {build:.2f} s | load average {load:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
