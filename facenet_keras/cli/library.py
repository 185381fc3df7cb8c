"""Sub-commands for a photo library's people: index, cluster, people, search."""

from __future__ import annotations

import argparse
import sys

from . import EXIT_BAD_INPUT, EXIT_NO_MATCH, EXIT_OK, _add_global_options, emit, gallery_option, profile_option


def register(sub) -> None:
    p = sub.add_parser("index", help="index every face of every photo under DIR (incremental, resumable)")
    p.add_argument("folder", metavar="DIR", help="the photo folder tree to index")
    _library_option(p)
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="distance threshold for recognising named people (default: the gallery's, else the package's)",
    )
    _model_option(p)
    p.add_argument("--strict", action="store_true", help="exit 2 if any file could not be indexed")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("cluster", help="group the faces that belong to no named person")
    _library_option(p)
    from facenet_keras.library.clustering import DEFAULT_METHOD, METHODS

    p.add_argument(
        "--method",
        choices=sorted(METHODS),
        default=DEFAULT_METHOD,
        help=f"clustering method (default {DEFAULT_METHOD}; see benchmarks/clustering.py)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="distance cut (default: derived from the encoder's calibration and the number of faces)",
    )
    p.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=argparse.SUPPRESS,
        metavar="OUT.json",
        help="one entry per face as JSON, to OUT.json (bare --json: on stdout)",
    )
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("people", help="list, name, merge, split or show the people and clusters of the library")
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    psub.add_parser("list", help="named people and clusters").set_defaults(func=cmd_people_list)
    r = psub.add_parser("name", help="name a cluster: enrols that person with all its faces")
    r.add_argument("cluster", type=int, metavar="CLUSTER", help="the cluster id (from 'cluster' or 'people list')")
    r.add_argument("name", metavar="NAME", help="the person's name")
    r.set_defaults(func=cmd_people_name)
    r = psub.add_parser("merge", help="merge B into A (clusters by id, people by name)")
    r.add_argument("a", metavar="A", help="the person or cluster that stays")
    r.add_argument("b", metavar="B", help="the person or cluster merged into A")
    r.set_defaults(func=cmd_people_merge)
    r = psub.add_parser("split", help="re-cluster one cluster at a stricter cut")
    r.add_argument("cluster", type=int, metavar="CLUSTER", help="the cluster id to split")
    r.add_argument("--threshold", type=float, default=None, help="the cut (default: 0.8 x the last clustering's)")
    r.set_defaults(func=cmd_people_split)
    r = psub.add_parser("show", help="the photos of a person or cluster, and a contact sheet")
    r.add_argument("target", metavar="NAME|CLUSTER", help="a named person or a cluster id")
    r.add_argument("--sheet", metavar="OUT.png", default=None, help="write a contact sheet of the faces")
    r.set_defaults(func=cmd_people_show)
    for action in psub.choices.values():
        _library_option(action)
        _add_global_options(action, default=False)

    p = sub.add_parser("search", help="every photo of a person (NAME) or of whoever is in a face (--photo)")
    p.add_argument("name", nargs="?", metavar="NAME", help="the named person whose photos to list")
    p.add_argument("--photo", metavar="FACE.jpg", default=None, help="find whoever is in this photo's main face")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="distance threshold (default: the gallery's calibrated one, else the encoder's own)",
    )
    _model_option(p)
    _library_option(p)
    p.set_defaults(func=cmd_search)


def _model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="MODEL",
        default=None,
        help="the encoder the library is indexed with (a .keras file from 'facenet-keras train', or an "
        "ArcFace-family .onnx file); default: the pretrained dlib ResNet",
    )
    profile_option(p)


def _library_option(p: argparse.ArgumentParser) -> None:
    """Every library command works on a gallery (named people) and its face index."""
    p.add_argument(
        "--library",
        metavar="PATH",
        default=None,
        help="the face index file (default: beside the gallery, NAME.library.sqlite)",
    )
    gallery_option(p)


def _open(args):
    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.library.store import library_path_for, open_library

    gallery = FaceGallery(args.gallery)
    try:
        library = open_library(args.library or library_path_for(gallery.path))
    except BaseException:
        gallery.close()
        raise
    return gallery, library


def cmd_index(args) -> int:
    from facenet_keras.library.index import index_folder

    gallery, library = _open(args)
    with gallery, library:
        report = index_folder(args.folder, library, gallery, model=args.model, threshold=args.threshold)
        counts = library.counts()
    rate = report.to_dict()["photos_per_second"]
    lines = [
        f"{report.folder}: {report.files} files: {report.indexed} indexed ({report.faces} faces"
        + (f", {rate:.2f} photos/s" if rate else "")
        + f"), {report.unchanged} unchanged, "
        f"{report.recognised_by_content} moved or copied, {report.removed_paths} gone "
        f"({report.pruned_photos} photos, {report.pruned_faces} faces pruned), {len(report.failed)} failed"
    ]
    for name, n in sorted(report.assigned.items()):
        lines.append(f"  {n} new face(s) recognised as {name}")
    for path, reason in sorted(report.failed.items()):
        lines.append(f"  failed: {path}: {reason}")
    lines.append(
        f"library {library.path}: {counts['photos']} photos, {counts['faces']} faces, {counts['named_faces']} named"
    )
    emit(args, {**report.to_dict(), "library": str(library.path), "totals": counts}, lines)
    return EXIT_BAD_INPUT if args.strict and report.failed else EXIT_OK


def cmd_cluster(args) -> int:
    from facenet_keras.library.people import run_clustering

    gallery, library = _open(args)
    with gallery, library:
        done = run_clustering(library, method=args.method, threshold=args.threshold)
        faces = library.faces()
    entries = [
        {"photo": f.path, "box": [round(float(v), 1) for v in f.box], "cluster": f.cluster, "person": f.person}
        for f in faces
    ]
    lines = [
        f"{done['faces']} unnamed faces: {done['clusters']} clusters, {done['unclustered']} left alone "
        f"({done['method']}, threshold {done['threshold']:.3f}: {done['threshold_rule']})",
        "name one with 'facenet-keras people name CLUSTER NAME'; see them with 'people list'",
    ]
    emit(args, entries, lines)
    return EXIT_OK


def cmd_people_list(args) -> int:
    from facenet_keras.library.people import summary

    gallery, library = _open(args)
    with gallery, library:
        s = summary(library, gallery)
    lines = [f"{len(s['people'])} named people, {len(s['clusters'])} clusters, {s['unclustered']} faces alone"]
    for p in s["people"]:
        lines.append(f"  {p['name']}: {p['faces']} faces in {p['photos']} photos ({p['enrolled_photos']} enrolled)")
    for c in s["clusters"]:
        lines.append(f"  cluster {c['cluster']}: {c['faces']} faces, e.g. {', '.join(c['photos'])}")
    emit(args, s, lines)
    return EXIT_OK


def cmd_people_name(args) -> int:
    from facenet_keras.library.people import name_cluster

    gallery, library = _open(args)
    with gallery, library:
        n = name_cluster(library, gallery, args.cluster, args.name)
    emit(
        args,
        {"cluster": args.cluster, "name": args.name, "faces": n},
        [f"cluster {args.cluster} named {args.name!r}: {n} faces enrolled"],
    )
    return EXIT_OK


def cmd_people_merge(args) -> int:
    from facenet_keras.library.people import merge, parse_target

    gallery, library = _open(args)
    with gallery, library:
        message = merge(library, gallery, parse_target(args.a), parse_target(args.b))
    emit(args, {"merged": args.b, "into": args.a, "message": message}, [message])
    return EXIT_OK


def cmd_people_split(args) -> int:
    from facenet_keras.library.people import split

    gallery, library = _open(args)
    with gallery, library:
        out = split(library, args.cluster, args.threshold)
    emit(
        args,
        out,
        [
            f"cluster {out['cluster']} split at {out['threshold']:.3f} into "
            f"{len(out['parts'])} part(s) {out['parts']} of {out['sizes']} faces, {out['unclustered']} alone"
        ],
    )
    return EXIT_OK


def cmd_people_show(args) -> int:
    from facenet_keras.library.people import contact_sheet, faces_of, parse_target

    target = parse_target(args.target)
    gallery, library = _open(args)
    with gallery, library:
        faces = faces_of(library, target)
    what = f"cluster {target}" if isinstance(target, int) else target
    lines = [f"{what}: {len(faces)} faces in {len({f.path for f in faces})} photos"]
    lines += [f"  {f.path} [{','.join(str(int(round(v))) for v in f.box)}]" for f in faces]
    payload = {"target": target, "faces": [f.to_dict() for f in faces]}
    if args.sheet:
        drawn = contact_sheet(faces, args.sheet, title=str(what))
        lines.append(f"contact sheet of {drawn} faces written to {args.sheet}")
        payload["sheet"] = args.sheet
    emit(args, payload, lines)
    return EXIT_OK


def cmd_search(args) -> int:
    from facenet_keras.library.search import photos_like, photos_of

    if (args.name is None) == (args.photo is None):
        print("facenet-keras: error: give a NAME or --photo FACE.jpg (not both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    gallery, library = _open(args)
    with gallery, library:
        if args.name is not None:
            found = photos_of(library, gallery, args.name, args.threshold, model=args.model)
            result = {"person": args.name, "photos": found}
            head = f"{args.name}: {len(result['photos'])} photo(s)"
        else:
            result = photos_like(library, gallery, args.photo, args.threshold, model=args.model)
            who = result["person"] or "someone not named"
            head = f"{args.photo}: {who}: {len(result['photos'])} photo(s)"
    lines = [head]
    for p in result["photos"]:
        far = "" if p["distance"] is None else f"  distance {p['distance']:.3f}"
        lines.append(f"  {p['photo']}  {p['how']}{far}")
    emit(args, result, lines)
    return EXIT_OK if result["photos"] else EXIT_NO_MATCH
