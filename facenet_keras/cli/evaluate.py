"""Sub-commands that measure the system on the user's data and choose its threshold:
``evaluate`` (1:1 pairs protocol), ``evaluate-identification`` (open-set 1:K) and ``calibrate``.

The protocols live in :mod:`facenet_keras.evaluation.protocols`; these commands parse, call them
and format the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from . import EXIT_OK, emit, gallery_option, open_gallery, profile_option


# -------------------------------------------------------------------------------- registration
def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="1:1 accuracy on a pairs file: k-fold accuracy, ROC AUC, EER, TAR@FAR",
        description="Verification on PAIRS.csv (columns path1,path2,same and optionally fold; paths "
        "relative to --root): k-fold cross-validated accuracy with the threshold chosen "
        "on the other folds, AUC, EER, TAR at FAR 1e-2 and 1e-3.",
    )
    p.add_argument("pairs", metavar="PAIRS.csv", help="the pairs file: columns path1,path2,same (and optionally fold)")
    _root_option(p)
    p.add_argument(
        "--folds",
        type=int,
        default=10,
        help="number of cross-validation folds (default 10; a 'fold' column overrides it)",
    )
    _json_option(p)
    p.add_argument("--plot", metavar="OUT.png", help="write the ROC and the distance histograms")
    _common_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "evaluate-identification",
        help="open-set 1:K on a folder of identities (ROOT/<person>/<photo>)",
        description="Enrols the first photo (with a face) of each person who has two or more, probes "
        "with their other photos and with the photos of people not enrolled (those with a "
        "single photo, plus --unenrolled more), and reports the detection-and-"
        "identification rate, false alarms, correct 'not recognised' answers and how the "
        "false accept rate grows with the gallery size K.",
    )
    p.add_argument("root", metavar="ROOT", help="folder of identities: ROOT/<person>/<photo>")
    p.add_argument("--threshold", type=float, default=None, help="distance threshold tau (default: the encoder's own)")
    p.add_argument(
        "--unenrolled",
        type=int,
        default=0,
        metavar="N",
        help="also leave N people with several photos out of the gallery (evenly spaced by name)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PERSON",
        help="leave this person's folder out (repeatable), e.g. a duplicate identity",
    )
    p.add_argument(
        "--fpir",
        type=float,
        action="append",
        default=None,
        metavar="RATE",
        help="false-alarm rate at which to report the detection-and-identification rate (repeatable; default 0.1)",
    )
    p.add_argument(
        "--target-far",
        type=float,
        default=0.01,
        metavar="RATE",
        help="false accept rate of strangers for which to calibrate 1:1 and 1:K thresholds (default 0.01)",
    )
    _json_option(p)
    p.add_argument("--plot", metavar="OUT.png", help="write the false accept rate against gallery size K")
    _common_options(p)
    p.set_defaults(func=cmd_evaluate_identification)

    p = sub.add_parser(
        "calibrate",
        help="choose the threshold for a target false accept rate (and store it with --save)",
        description="Prints the largest threshold whose false accept rate on the different-person "
        "pairs of PAIRS.csv is at most --target-far; --save stores it in the gallery so "
        "that verify and recognize use it; --save-model stores it in the --model file, "
        "which then carries its own threshold everywhere.",
    )
    p.add_argument("pairs", metavar="PAIRS.csv", help="the pairs file: columns path1,path2,same (and optionally fold)")
    _root_option(p)
    p.add_argument(
        "--target-far", type=float, required=True, metavar="FAR", help="largest acceptable false accept rate, e.g. 1e-3"
    )
    p.add_argument(
        "--for-gallery-size",
        type=int,
        default=None,
        metavar="K",
        help="calibrate for recognition (1:K): a stranger is falsely accepted by a gallery of "
        "K people with probability at most --target-far (each comparison then gets "
        "1-(1-FAR)^(1/K), about FAR/K)",
    )
    p.add_argument("--save", action="store_true", help="store the threshold in the gallery (see --gallery)")
    p.add_argument(
        "--save-model",
        action="store_true",
        help="store the threshold inside the --model .keras file (the encoder's own threshold)",
    )
    _json_option(p)
    _common_options(p)
    gallery_option(p)
    p.set_defaults(func=cmd_calibrate)


def _root_option(p) -> None:
    p.add_argument(
        "--root", metavar="DIR", default=None, help="folder the CSV's paths are relative to (default: the CSV's folder)"
    )


def _json_option(p) -> None:
    # "--json OUT.json" writes the figures to a file; a bare "--json" (here or before the command)
    # prints them as JSON instead of text. The value is taken only when it ends in .json (see
    # cli.json_file_arguments), so "--json PAIRS.csv" never swallows the positional argument.
    p.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=argparse.SUPPRESS,
        metavar="OUT.json",
        help="write the figures as JSON to OUT.json (a name ending in .json, or --json=FILE); "
        "bare --json: print JSON instead of text",
    )


def _common_options(p) -> None:
    p.add_argument(
        "--model",
        metavar="MODEL",
        default=None,
        help="a trained encoder (.keras, from 'facenet-keras train') or an ArcFace-family .onnx file; "
        "default: the pretrained dlib ResNet",
    )
    profile_option(p)
    p.add_argument(
        "--no-cache", action="store_true", help="recompute every embedding instead of using the embedding cache"
    )


# -------------------------------------------------------------------------------- input
# -------------------------------------------------------------------------------- output
def _warn_failed(problems: dict[str, str], limit: int = 10) -> None:
    for i, (path, why) in enumerate(sorted(problems.items())):
        if i == limit:
            print(f"warning: ... and {len(problems) - limit} more photo(s) without a usable face", file=sys.stderr)
            break
        print(f"warning: {path}: {why}", file=sys.stderr)


def _far_resolution_note(n_impostor: int, far: float) -> str:
    return (
        (
            f" ({n_impostor} different-person pairs: a FAR below {1 / n_impostor:.1g} only means "
            "no false accept was seen)"
        )
        if n_impostor * far < 1
        else ""
    )


# -------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from facenet_keras.evaluation import metrics as ev
    from facenet_keras.evaluation.protocols import figures_by_kind, pair_distances, read_pairs
    from facenet_keras.faces.pipeline import encoder_threshold

    p1, p2, same, folds = read_pairs(args.pairs, args.root)
    d, problems = pair_distances(p1, p2, model=args.model, cache=not args.no_cache)
    _warn_failed(problems)
    report = ev.verification_report(d, same, folds=args.folds, fold_ids=folds)
    report["failed_photos"] = problems
    report["fold_source"] = "fold column" if folds is not None else "stratified round-robin"
    report["by_kind"] = figures_by_kind(p1, p2, d, same, report["threshold"])
    shipped = encoder_threshold(args.model)  # None: an uncalibrated encoder carries none
    if shipped is not None:  # the threshold verify and recognize use, not one chosen on these pairs
        report["shipped_threshold"] = shipped
        report["accuracy_at_shipped_threshold"] = ev.accuracy_at(d, same, shipped)
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
    if shipped is not None:
        lines.append(
            f"accuracy at the encoder's own threshold {shipped:.4f}: {report['accuracy_at_shipped_threshold']:.4f}"
        )
    for far in (1e-2, 1e-3):
        key = f"tar_at_far_{far:.0e}".replace("e-0", "e-")
        lines.append(f"TAR@FAR={far:g}: {report[key]:.4f}" + _far_resolution_note(report["impostor_pairs"], far))
    if len(report["by_kind"]) > 1:
        for kind, r in report["by_kind"].items():
            auc_text = f", AUC {r['auc']:.4f}" if r["auc"] is not None else ""
            lines.append(
                f"  {kind}: {r['pairs']} pairs ({r['failed']} failed), accuracy at the threshold "
                f"{r['accuracy']:.4f}{auc_text}"
            )
    if args.plot:
        from facenet_keras.evaluation.plots import plot_verification, save_figure

        fig = plot_verification(
            d,
            same,
            report["threshold"],
            title=f"{Path(args.pairs).name}: accuracy {report['accuracy']:.4f} +- {report['accuracy_std']:.4f}",
        )
        save_figure(fig, args.plot)
        lines.append(f"plot written to {args.plot}")
    emit(args, report, lines)
    return EXIT_OK


# -------------------------------------------------------------------------------- calibrate
def cmd_calibrate(args) -> int:
    from facenet_keras.evaluation import metrics as ev
    from facenet_keras.evaluation.protocols import pair_distances, read_pairs

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
    payload = {
        "threshold": tau,
        "target_far": target,
        "gallery_size": k,
        "per_comparison_far": pair_target,
        "far": far,
        "tar": tar,
        "genuine_pairs": n_gen,
        "impostor_pairs": n_imp,
        "pairs": int(d.size),
        "failed": int(np.count_nonzero(np.isnan(d))),
        "saved_to": None,
    }
    lines = [f"threshold: {tau:.4f}"]
    if k:
        lines.append(
            f"  for 1:{k}: a stranger falsely accepted with probability <= {target:g} needs each "
            f"comparison at FAR <= {pair_target:.3g}"
        )
    lines.append(
        f"  on {args.pairs}: FAR {far:.4g} (target {pair_target:.3g}), TAR {tar:.4f}; "
        f"{n_gen} same-person and {n_imp} different-person pairs, {payload['failed']} failed"
        + _far_resolution_note(n_imp, pair_target)
    )
    if args.save_model:
        if not isinstance(args.model, (str, os.PathLike)) or str(args.model).lower().endswith(".onnx"):
            raise ValueError(
                "--save-model stores the threshold in a --model .keras file (an .onnx file cannot carry one: "
                "use --save to keep it in the gallery)"
            )
        from facenet_keras.models.metadata import write_metadata

        write_metadata(
            args.model, threshold=tau, threshold_source=f"calibrate {Path(args.pairs).name}", target_far=pair_target
        )
        payload["saved_to_model"] = str(args.model)
        lines.append(f"stored in the model {args.model}: it now carries this threshold")
    if args.save:
        from facenet_keras.identity.recognition import check_gallery_space

        with open_gallery(args, readonly=False) as g:
            check_gallery_space(g, args.model)  # a threshold is only right for its own encoder
            g.threshold = tau
            payload["saved_to"] = str(g.path)
        lines.append(f"stored in the gallery {g.path}: verify and recognize now use it")
    if not (args.save or args.save_model):
        lines.append(
            "(add --save to store it in the gallery for verify/recognize, or --save-model to store it "
            "in the --model file)"
        )
    emit(args, payload, lines)
    return EXIT_OK


# -------------------------------------------------------------------------------- identification
def cmd_evaluate_identification(args) -> int:
    from facenet_keras.evaluation.protocols import open_set_report
    from facenet_keras.identity.recognition import resolve_threshold

    threshold = resolve_threshold(args.threshold, None, args.model)  # an uncalibrated encoder cannot decide
    report = open_set_report(
        args.root,
        threshold=threshold,
        unenrolled=args.unenrolled,
        exclude=args.exclude,
        fpir=args.fpir or [0.1],
        target_far=args.target_far,
        model=args.model,
        cache=not args.no_cache,
    )
    _warn_failed(report["failed_photos"])
    payload, people, K, tau = report, report["people"], report["enrolled"], report["threshold"]
    at_tau, by_kind, dir_at, curve = report, report["by_kind"], report["dir_at_fpir"], report["false_accept_vs_k"]
    cal = report["calibrated"]
    target, k_max, tau_1, tau_k = cal["target_far"], cal["gallery_size"], cal["threshold_1to1"], cal["threshold_1toK"]
    curve_1, curve_k, at_tau_k = cal["curve_1to1"], cal["curve_1toK"], cal["at_1toK"]
    p1 = curve["per_comparison_far"]
    rate_k = curve["rate"][-1]
    lines = [
        f"{args.root}: {people} people; enrolled {K} (one photo each); "
        f"{at_tau['mated_probes']} probes of enrolled people, {at_tau['non_mated_probes']} of "
        f"{people - K} people not enrolled; {payload['failed_probes']} probes without a usable face "
        "(never recognised)",
        f"at threshold {tau:.3f}:",
        f"  detection-and-identification rate (DIR): {at_tau['dir']:.4f}   rank-1 (closed set): {at_tau['rank1']:.4f}",
        f"  enrolled people: not recognised {at_tau['false_reject_rate']:.4f}, "
        f"taken for someone else {at_tau['misidentification_rate']:.4f}",
        f"  people not enrolled: correct 'not recognised' {at_tau['true_reject_rate']:.4f}, "
        f"false alarm (FPIR) {at_tau['fpir']:.4f}",
    ]
    for kind, r in by_kind.items():
        lines.append(
            f"  {kind}s: DIR {r['dir']:.4f} of {r['mated_probes']}, correct 'not recognised' "
            f"{r['true_reject_rate']:.4f} of {r['non_mated_probes']}"
        )
    for rate, r in dir_at.items():
        lines.append(
            f"DIR at FPIR {rate}: {r['dir']:.4f} (threshold {r['threshold']:.4f}; "
            f"{at_tau['non_mated_probes']} strangers)"
        )
    lines += [
        f"false accepts grow with the gallery: at threshold {tau:.3f} a stranger is accepted by one "
        f"comparison with probability {p1:.4g} but by a gallery of {k_max} with {rate_k:.4g} "
        f"(1-(1-p)^K predicts {curve['independent'][-1]:.4g}); measured on {curve['probes']} probes "
        "against everyone but themselves",
        f"for strangers' false accepts <= {target:g}: 1:1 needs threshold <= {tau_1:.4f}, but 1:{k_max} "
        f"needs <= {tau_k:.4f} (there {curve_k['per_comparison_far']:.3g} per comparison); at "
        f"{tau_1:.4f} a gallery of {k_max} accepts {curve_1['rate'][-1]:.4g} of strangers",
        f"  at {tau_k:.4f}: DIR {at_tau_k['dir']:.4f}, correct 'not recognised' {at_tau_k['true_reject_rate']:.4f}",
    ]
    if args.plot:
        from facenet_keras.evaluation.plots import plot_false_accept_vs_gallery_size, save_figure

        fig = plot_false_accept_vs_gallery_size(
            {
                f"tau {tau:.3f} (default)": curve,
                f"tau {tau_1:.3f} (1:1 calibrated)": curve_1,
                f"tau {tau_k:.3f} (1:{k_max} calibrated)": curve_k,
            },
            target=target,
            title=f"{Path(args.root).name}: false accepts of strangers vs gallery size",
        )
        save_figure(fig, args.plot)
        lines.append(f"plot written to {args.plot}")
    emit(args, payload, lines)
    return EXIT_OK
