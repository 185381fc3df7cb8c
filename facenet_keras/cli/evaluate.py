"""Sub-commands that measure the system on the user's data and choose its threshold:
``evaluate`` (1:1 pairs protocol), ``evaluate-identification`` (open-set 1:K) and ``calibrate``.

Photos are embedded once through :mod:`facenet_keras.embedding_cache` (the main face of each
photo, keyed by file content and model), so a second run skips detection and encoding. A photo in
which no face is found makes its pairs *failed*: they count as errors and are reported.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from . import EXIT_OK, emit

_TRUE = {"1", "true", "yes", "same", "y", "t"}
_FALSE = {"0", "false", "no", "different", "n", "f"}
_CROP_MAX_SIDE = 160  # photos no larger than this are tight face crops (e.g. 150x150 chips)


# -------------------------------------------------------------------------------- registration
def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="1:1 accuracy on a pairs file: k-fold accuracy, ROC AUC, EER, TAR@FAR",
        description="Verification on PAIRS.csv (columns path1,path2,same and optionally fold; paths "
                    "relative to --root): k-fold cross-validated accuracy with the threshold chosen "
                    "on the other folds, AUC, EER, TAR at FAR 1e-2 and 1e-3.")
    p.add_argument("pairs", metavar="PAIRS.csv")
    _root_option(p)
    p.add_argument("--folds", type=int, default=10,
                   help="number of cross-validation folds (default 10; a 'fold' column overrides it)")
    _json_option(p)
    p.add_argument("--plot", metavar="OUT.png", help="write the ROC and the distance histograms")
    _common_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "evaluate-identification", help="open-set 1:K on a folder of identities (ROOT/<person>/<photo>)",
        description="Enrols the first photo (with a face) of each person who has two or more, probes "
                    "with their other photos and with the photos of people not enrolled (those with a "
                    "single photo, plus --unenrolled more), and reports the detection-and-"
                    "identification rate, false alarms, correct 'not recognised' answers and how the "
                    "false accept rate grows with the gallery size K.")
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--threshold", type=float, default=None,
                   help="distance threshold tau (default: the package default)")
    p.add_argument("--unenrolled", type=int, default=0, metavar="N",
                   help="also leave N people with several photos out of the gallery (evenly spaced by name)")
    p.add_argument("--exclude", action="append", default=[], metavar="PERSON",
                   help="leave this person's folder out (repeatable), e.g. a duplicate identity")
    p.add_argument("--fpir", type=float, action="append", default=None, metavar="RATE",
                   help="false-alarm rate at which to report the detection-and-identification rate "
                        "(repeatable; default 0.1)")
    p.add_argument("--target-far", type=float, default=0.01, metavar="RATE",
                   help="false accept rate of strangers for which to calibrate 1:1 and 1:K thresholds "
                        "(default 0.01)")
    _json_option(p)
    p.add_argument("--plot", metavar="OUT.png", help="write the false accept rate against gallery size K")
    _common_options(p)
    p.set_defaults(func=cmd_evaluate_identification)

    p = sub.add_parser(
        "calibrate", help="choose the threshold for a target false accept rate (and store it with --save)",
        description="Prints the largest threshold whose false accept rate on the different-person "
                    "pairs of PAIRS.csv is at most --target-far; --save stores it in the gallery so "
                    "that verify and recognize use it.")
    p.add_argument("pairs", metavar="PAIRS.csv")
    _root_option(p)
    p.add_argument("--target-far", type=float, required=True, metavar="FAR",
                   help="largest acceptable false accept rate, e.g. 1e-3")
    p.add_argument("--for-gallery-size", type=int, default=None, metavar="K",
                   help="calibrate for recognition (1:K): a stranger is falsely accepted by a gallery of "
                        "K people with probability at most --target-far (each comparison then gets "
                        "1-(1-FAR)^(1/K), about FAR/K)")
    p.add_argument("--save", action="store_true", help="store the threshold in the gallery (see --gallery)")
    _json_option(p)
    _common_options(p)
    p.set_defaults(func=cmd_calibrate)


def _root_option(p) -> None:
    p.add_argument("--root", metavar="DIR", default=None,
                   help="folder the CSV's paths are relative to (default: the CSV's folder)")


def _json_option(p) -> None:
    # "--json OUT.json" writes the figures to a file; a bare "--json" (here or before the command)
    # prints them as JSON instead of text.
    p.add_argument("--json", nargs="?", const=True, default=argparse.SUPPRESS, metavar="OUT.json",
                   help="write the figures as JSON to OUT.json (bare --json: print JSON instead of text)")


def _common_options(p) -> None:
    p.add_argument("--model", metavar="MODEL.keras", default=None,
                   help="a trained encoder (from 'facenet-keras train'); default: the pretrained dlib ResNet")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute every embedding instead of using the embedding cache")


# -------------------------------------------------------------------------------- input
def read_pairs(csv_path: str | Path, root: str | Path | None = None):
    """A pairs file -> ``(paths1, paths2, same (n,) bool, folds (n,) str or None)``.

    Columns ``path1,path2,same`` (same: 1/0, true/false, yes/no), optional ``fold``; paths are
    relative to ``root`` (default: the CSV's folder) unless absolute. Every problem raises a
    ValueError / FileNotFoundError naming the line.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"pairs file not found: {csv_path}")
    base = Path(root) if root is not None else csv_path.parent
    if not base.is_dir():
        raise FileNotFoundError(f"--root is not a folder: {base}")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = {"path1", "path2", "same"} - set(columns)
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))} "
                             f"(need path1,path2,same and optionally fold; found {columns})")
        reader.fieldnames = columns
        has_fold = "fold" in columns
        p1, p2, same, folds = [], [], [], []
        for line, row in enumerate(reader, start=2):
            a, b = (row.get("path1") or "").strip(), (row.get("path2") or "").strip()
            s = (row.get("same") or "").strip().lower()
            if not a or not b:
                raise ValueError(f"{csv_path}:{line}: empty path")
            if s not in _TRUE | _FALSE:
                raise ValueError(f"{csv_path}:{line}: 'same' must be 1/0 (or true/false), got {row.get('same')!r}")
            p1.append(str(base / a))
            p2.append(str(base / b))
            same.append(s in _TRUE)
            if has_fold:
                fold = (row.get("fold") or "").strip()
                if not fold:
                    raise ValueError(f"{csv_path}:{line}: empty fold")
                folds.append(fold)
    if not p1:
        raise ValueError(f"{csv_path}: no pairs")
    absent = sorted({p for p in p1 + p2 if not Path(p).is_file()})
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise FileNotFoundError(f"{len(absent)} photo(s) listed in {csv_path} not found under {base}: {shown}")
    return p1, p2, np.array(same, dtype=bool), (np.array(folds) if has_fold else None)


def pair_distances(paths1, paths2, *, model=None, cache: bool = True, progress: bool | None = None):
    """Distances (n,) between the main faces of each pair (NaN where a photo had no usable face),
    and the dict photo -> reason for every photo that failed."""
    from facenet_keras.embedding_cache import primary_embeddings

    unique = sorted(set(paths1) | set(paths2))
    embeddings, problems = primary_embeddings(unique, model=model, cache=cache, progress=progress)
    by_path = dict(zip(unique, embeddings))
    d = np.full(len(paths1), np.nan)
    for i, (a, b) in enumerate(zip(paths1, paths2)):
        ea, eb = by_path[a], by_path[b]
        if ea is not None and eb is not None:
            d[i] = float(np.linalg.norm(ea.astype(np.float64) - eb.astype(np.float64)))
    return d, problems


def _photo_kind(path: str) -> str:
    """'crop' for a tight face crop (no side above 160 px), else 'photo'; reads the header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return "crop" if max(im.size) <= _CROP_MAX_SIDE else "photo"
    except Exception:  # unreadable: it fails (and is reported) elsewhere
        return "photo"


# -------------------------------------------------------------------------------- output
def _warn_failed(problems: dict[str, str], limit: int = 10) -> None:
    for i, (path, why) in enumerate(sorted(problems.items())):
        if i == limit:
            print(f"warning: ... and {len(problems) - limit} more photo(s) without a usable face", file=sys.stderr)
            break
        print(f"warning: {path}: {why}", file=sys.stderr)


def _far_resolution_note(n_impostor: int, far: float) -> str:
    return (f" ({n_impostor} different-person pairs: a FAR below {1 / n_impostor:.1g} only means "
            "no false accept was seen)") if n_impostor * far < 1 else ""


# -------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from facenet_keras import evaluation as ev

    p1, p2, same, folds = read_pairs(args.pairs, args.root)
    d, problems = pair_distances(p1, p2, model=args.model, cache=not args.no_cache)
    _warn_failed(problems)
    report = ev.verification_report(d, same, folds=args.folds, fold_ids=folds)
    report["failed_photos"] = problems
    report["fold_source"] = "fold column" if folds is not None else "stratified round-robin"
    report["by_kind"] = _by_kind(ev, p1, p2, d, same, report["threshold"])
    lines = [
        f"pairs: {report['pairs']} ({report['genuine_pairs']} same person, "
        f"{report['impostor_pairs']} different); failed: {report['failed']} "
        "(no usable face in a photo; counted as errors)",
        f"accuracy: {report['accuracy']:.4f} +- {report['accuracy_std']:.4f} "
        f"({report['folds']}-fold, {report['fold_source']}; threshold chosen on the other folds)",
        f"threshold: {report['threshold']:.4f} (mean of the per-fold thresholds; accept when distance <= threshold)",
        f"AUC: {report['auc']:.5f}",
        f"EER: {report['eer']:.4f} (at distance {report['eer_threshold']:.4f})",
    ]
    for far in (1e-2, 1e-3):
        key = f"tar_at_far_{far:.0e}".replace("e-0", "e-")
        lines.append(f"TAR@FAR={far:g}: {report[key]:.4f}" + _far_resolution_note(report["impostor_pairs"], far))
    if len(report["by_kind"]) > 1:
        for kind, r in report["by_kind"].items():
            auc_text = f", AUC {r['auc']:.4f}" if r["auc"] is not None else ""
            lines.append(f"  {kind}: {r['pairs']} pairs ({r['failed']} failed), accuracy at the threshold "
                         f"{r['accuracy']:.4f}{auc_text}")
    if args.plot:
        from facenet_keras.plots import plot_verification, save_figure

        fig = plot_verification(d, same, report["threshold"],
                                title=f"{Path(args.pairs).name}: accuracy {report['accuracy']:.4f} "
                                      f"+- {report['accuracy_std']:.4f}")
        save_figure(fig, args.plot)
        lines.append(f"plot written to {args.plot}")
    emit(args, report, lines)
    return EXIT_OK


def _by_kind(ev, p1, p2, d, same, threshold) -> dict:
    """Figures per kind of pair: both photos tight face crops, both full photos, or one of each."""
    kind_of = {p: _photo_kind(p) for p in set(p1) | set(p2)}
    kinds = np.array([kind_of[a] if kind_of[a] == kind_of[b] else "mixed" for a, b in zip(p1, p2)])
    out = {}
    for kind in ("crop", "photo", "mixed"):
        sel = kinds == kind
        if not sel.any():
            continue
        both = same[sel].any() and not same[sel].all()
        out[kind] = {"pairs": int(sel.sum()), "failed": int(np.isnan(d[sel]).sum()),
                     "genuine_pairs": int(same[sel].sum()),
                     "accuracy": ev.accuracy_at(d[sel], same[sel], threshold),
                     "auc": ev.auc(d[sel], same[sel]) if both else None}
    return out


# -------------------------------------------------------------------------------- calibrate
def cmd_calibrate(args) -> int:
    from facenet_keras import evaluation as ev

    target = float(args.target_far)
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"--target-far must be in [0, 1], got {target}")
    p1, p2, same, _ = read_pairs(args.pairs, args.root)
    d, problems = pair_distances(p1, p2, model=args.model, cache=not args.no_cache)
    _warn_failed(problems)
    k = args.for_gallery_size
    pair_target = ev.per_comparison_far(target, k) if k else target
    tau = ev.calibrate(d, same, pair_target)
    n_imp, n_gen = int(np.count_nonzero(~same)), int(np.count_nonzero(same))
    far = float(np.count_nonzero(~same & (d <= tau)) / n_imp)
    tar = float(np.count_nonzero(same & (d <= tau)) / n_gen) if n_gen else float("nan")
    payload = {"threshold": tau, "target_far": target, "gallery_size": k, "per_comparison_far": pair_target,
               "far": far, "tar": tar, "genuine_pairs": n_gen, "impostor_pairs": n_imp,
               "pairs": int(d.size), "failed": int(np.count_nonzero(np.isnan(d))), "saved_to": None}
    lines = [f"threshold: {tau:.4f}"]
    if k:
        lines.append(f"  for 1:{k}: a stranger falsely accepted with probability <= {target:g} needs each "
                     f"comparison at FAR <= {pair_target:.3g}")
    lines.append(f"  on {args.pairs}: FAR {far:.4g} (target {pair_target:.3g}), TAR {tar:.4f}; "
                 f"{n_gen} same-person and {n_imp} different-person pairs, {payload['failed']} failed"
                 + _far_resolution_note(n_imp, pair_target))
    if args.save:
        from facenet_keras.gallery import FaceGallery
        from facenet_keras.pipeline import pipeline_id

        with FaceGallery(args.gallery) as g:
            stored_model = g.model_id
            g.threshold = tau
            payload["saved_to"] = str(g.path)
        lines.append(f"stored in the gallery {g.path}: verify and recognize now use it")
        if stored_model is not None and stored_model != pipeline_id(args.model):
            print(f"warning: the gallery's embeddings come from {stored_model!r} but the threshold was "
                  f"calibrated with {pipeline_id(args.model)!r}", file=sys.stderr)
    else:
        lines.append("(add --save to store it in the gallery for verify/recognize)")
    emit(args, payload, lines)
    return EXIT_OK


# -------------------------------------------------------------------------------- identification
def cmd_evaluate_identification(args) -> int:
    from facenet_keras import evaluation as ev
    from facenet_keras.embedding_cache import primary_embeddings
    from facenet_keras.recognition import DEFAULT_THRESHOLD

    tau = float(args.threshold) if args.threshold is not None else float(DEFAULT_THRESHOLD)
    from facenet_keras.data import list_identities

    people = {name: [str(p) for p in photos] for name, photos in list_identities(args.root).items()}
    unknown = sorted(set(args.exclude) - set(people))
    if unknown:
        raise ValueError(f"--exclude: no such person folder in {args.root}: {', '.join(unknown)}")
    people = {n: p for n, p in people.items() if n not in set(args.exclude)}
    multi = [n for n, photos in people.items() if len(photos) >= 2]
    if args.unenrolled < 0 or args.unenrolled >= len(multi):
        raise ValueError(f"--unenrolled must be in [0, {len(multi) - 1}] (people with several photos)")
    held_out = set()
    if args.unenrolled:
        held_out = {multi[int(i)] for i in np.round(np.linspace(0, len(multi) - 1, args.unenrolled))}
    all_photos = [p for photos in people.values() for p in photos]
    embeddings, problems = primary_embeddings(all_photos, model=args.model, cache=not args.no_cache)
    emb = dict(zip(all_photos, embeddings))
    _warn_failed(problems)

    # enrol the first photo with a face of each person with several photos (not held out)
    gallery, gallery_labels, probes = [], [], []  # probes: (path, person)
    skipped_enrolment = 0
    for name, photos in people.items():
        if len(photos) >= 2 and name not in held_out:
            first = next((p for p in photos if emb[p] is not None), None)
            if first is None:
                held_out.add(name)  # no usable photo: this person can only be a stranger
                probes += [(p, name) for p in photos]
                continue
            skipped_enrolment += photos.index(first)
            gallery.append(emb[first])
            gallery_labels.append(name)
            probes += [(p, name) for p in photos if p != first]
        else:
            probes += [(p, name) for p in photos]
    if len(gallery) < 2:
        raise ValueError(f"{args.root}: fewer than two people could be enrolled")
    enrolled = sorted(gallery_labels)
    gallery = np.stack(gallery)
    gallery_labels = np.array(gallery_labels)
    probe_labels = np.array([name for _, name in probes])
    ok = np.array([emb[p] is not None for p, _ in probes])
    dim = gallery.shape[1]
    probe_emb = np.stack([emb[p] if emb[p] is not None else np.zeros(dim, np.float32) for p, _ in probes])

    per_id, identities = ev.identity_distances(gallery, gallery_labels, probe_emb)
    per_id[~ok] = np.inf
    j = np.argmin(per_id, axis=1)
    nearest = np.where(ok, identities[j], "")
    nearest_d = np.where(ok, per_id[np.arange(len(j)), j], np.nan)  # NaN: no face, never accepted

    at_tau = ev.open_set_identification(nearest, nearest_d, probe_labels, enrolled, tau)
    mated = np.isin(probe_labels, enrolled)
    dir_at = {}
    for rate in args.fpir or [0.1]:
        dir_rate, t = ev.dir_at_fpir(nearest, nearest_d, probe_labels, enrolled, rate)
        dir_at[f"{rate:g}"] = {"dir": dir_rate, "threshold": t}

    # impostor comparisons: strangers against everyone, enrolled people against everyone else
    impostor = per_id[ok]
    exclude = (identities[None, :] == probe_labels[ok][:, None])
    K = len(enrolled)
    curve = ev.false_accept_vs_gallery_size(impostor, tau, exclude=exclude)
    p1 = curve["per_comparison_far"]
    k_max = curve["sizes"][-1]
    target = float(args.target_far)
    # the same stranger false-accept target met by a 1:1 and by a 1:K threshold
    tau_1 = ev.threshold_for_gallery_size(impostor, 1, target, exclude=exclude)
    tau_k = ev.threshold_for_gallery_size(impostor, k_max, target, exclude=exclude)
    curve_1 = ev.false_accept_vs_gallery_size(impostor, tau_1, exclude=exclude)
    curve_k = ev.false_accept_vs_gallery_size(impostor, tau_k, exclude=exclude)
    at_tau_1 = ev.open_set_identification(nearest, nearest_d, probe_labels, enrolled, tau_1)
    at_tau_k = ev.open_set_identification(nearest, nearest_d, probe_labels, enrolled, tau_k)

    kinds = np.array([_photo_kind(p) for p, _ in probes])
    by_kind = {}
    for kind in ("crop", "photo"):
        sel = kinds == kind
        if sel.any():
            by_kind[kind] = ev.open_set_identification(nearest[sel], nearest_d[sel], probe_labels[sel], enrolled, tau)
            by_kind[kind]["failed_probes"] = int(np.count_nonzero(sel & ~ok))

    payload = {
        "root": str(args.root), "threshold": tau, "enrolled": K, "people": len(people),
        "unenrolled_people": len(people) - K, "probes": len(probes),
        "failed_probes": int(np.count_nonzero(~ok)),
        "failed_mated_probes": int(np.count_nonzero(~ok & mated)),
        "enrolment_photos_skipped": skipped_enrolment,
        **{k: at_tau[k] for k in ("mated_probes", "non_mated_probes", "dir", "rank1", "false_reject_rate",
                                  "misidentification_rate", "fpir", "true_reject_rate")},
        "dir_at_fpir": dir_at,
        "by_kind": by_kind,
        "false_accept_vs_k": curve,
        "calibrated": {
            "target_far": target, "gallery_size": k_max, "impostor_probes": curve["probes"],
            "threshold_1to1": tau_1, "threshold_1toK": tau_k,
            "curve_1to1": curve_1, "curve_1toK": curve_k,
            "at_1to1": {k: at_tau_1[k] for k in ("dir", "fpir", "true_reject_rate")},
            "at_1toK": {k: at_tau_k[k] for k in ("dir", "fpir", "true_reject_rate")},
        },
        "excluded": sorted(args.exclude),
        "failed_photos": problems,
    }
    rate_k = curve["rate"][-1]
    lines = [
        f"{args.root}: {len(people)} people; enrolled {K} (one photo each); "
        f"{at_tau['mated_probes']} probes of enrolled people, {at_tau['non_mated_probes']} of "
        f"{len(people) - K} people not enrolled; {payload['failed_probes']} probes without a usable face "
        "(never recognised)",
        f"at threshold {tau:.3f}:",
        f"  detection-and-identification rate (DIR): {at_tau['dir']:.4f}   "
        f"rank-1 (closed set): {at_tau['rank1']:.4f}",
        f"  enrolled people: not recognised {at_tau['false_reject_rate']:.4f}, "
        f"taken for someone else {at_tau['misidentification_rate']:.4f}",
        f"  people not enrolled: correct 'not recognised' {at_tau['true_reject_rate']:.4f}, "
        f"false alarm (FPIR) {at_tau['fpir']:.4f}",
    ]
    for kind, r in by_kind.items():
        lines.append(f"  {kind}s: DIR {r['dir']:.4f} of {r['mated_probes']}, correct 'not recognised' "
                     f"{r['true_reject_rate']:.4f} of {r['non_mated_probes']}")
    for rate, r in dir_at.items():
        lines.append(f"DIR at FPIR {rate}: {r['dir']:.4f} (threshold {r['threshold']:.4f}; "
                     f"{at_tau['non_mated_probes']} strangers)")
    lines += [
        f"false accepts grow with the gallery: at threshold {tau:.3f} a stranger is accepted by one "
        f"comparison with probability {p1:.4g} but by a gallery of {k_max} with {rate_k:.4g} "
        f"(1-(1-p)^K predicts {curve['independent'][-1]:.4g}); measured on {curve['probes']} probes "
        "against everyone but themselves",
        f"for strangers' false accepts <= {target:g}: 1:1 needs threshold <= {tau_1:.4f}, but 1:{k_max} "
        f"needs <= {tau_k:.4f} (there {curve_k['per_comparison_far']:.3g} per comparison); at "
        f"{tau_1:.4f} a gallery of {k_max} accepts {curve_1['rate'][-1]:.4g} of strangers",
        f"  at {tau_k:.4f}: DIR {at_tau_k['dir']:.4f}, correct 'not recognised' "
        f"{at_tau_k['true_reject_rate']:.4f}",
    ]
    if args.plot:
        from facenet_keras.plots import plot_false_accept_vs_gallery_size, save_figure

        fig = plot_false_accept_vs_gallery_size(
            {f"tau {tau:.3f} (default)": curve, f"tau {tau_1:.3f} (1:1 calibrated)": curve_1,
             f"tau {tau_k:.3f} (1:{k_max} calibrated)": curve_k}, target=target,
            title=f"{Path(args.root).name}: false accepts of strangers vs gallery size")
        save_figure(fig, args.plot)
        lines.append(f"plot written to {args.plot}")
    emit(args, payload, lines)
    return EXIT_OK
