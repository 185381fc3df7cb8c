"""Sub-commands for the everyday job: enroll, verify, compare, recognize, detect, gallery."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import EXIT_BAD_INPUT, EXIT_NO_MATCH, EXIT_OK, emit, gallery_option, open_gallery, profile_option, warn


def register(sub) -> None:
    p = sub.add_parser(
        "enroll",
        help="enrol a person from one or more photos (one-shot, no retraining), "
        "or everyone in a folder with --from-folder DIR",
    )
    p.add_argument(
        "name", nargs="?", metavar="NAME", help="the person's name (stripped; no control characters; <= 200)"
    )
    p.add_argument(
        "photos", nargs="*", metavar="PHOTO", help="photo(s) of that person, one face each (or say which with --face)"
    )
    p.add_argument(
        "--face",
        metavar="largest|centre|INDEX",
        default=None,
        help="which face to enrol when a photo shows several: the largest, the one nearest the "
        "centre, or its index (0 = largest, as 'detect' lists them)",
    )
    p.add_argument(
        "--force", action="store_true", help="enrol even a face too small or too blurred to serve as a reference"
    )
    p.add_argument(
        "--from-folder",
        metavar="DIR",
        default=None,
        help="enrol DIR/<person>/<photo>: one sub-folder per person, a per-photo report",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="with --from-folder: exit 2 when any photo failed (no face, several faces, unreadable)",
    )
    _model_option(p)
    gallery_option(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("compare", help="are the people in two photos the same person? (exit 0 match, 1 no match)")
    p.add_argument("photo1", metavar="PHOTO1", help="the first photo (its main face is used)")
    p.add_argument("photo2", metavar="PHOTO2", help="the second photo (its main face is used)")
    _threshold_option(p)
    _model_option(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("verify", help="1:1: is the person in PHOTO the enrolled NAME? (exit 0 match, 1 no match)")
    p.add_argument("photo", metavar="PHOTO", help="the photo to check (its main face is used)")
    p.add_argument("name", metavar="NAME", help="the enrolled person it is claimed to show")
    _threshold_option(p)
    _model_option(p)
    p.add_argument(
        "--classifier",
        metavar="HEAD.keras",
        default=None,
        help="decide with a trained Siamese classifier (SiameseClassifier.save) instead of the threshold",
    )
    gallery_option(p)
    p.add_argument(
        "--liveness",
        action="store_true",
        help="PHOTO is a short video clip: refuse the match unless the face is live (see docs/video.md)",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("recognize", help="1:K: who is each face in the photos? (exit 0 if anyone is recognised)")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo(s) in which to name every face")
    _annotate_option(p, "boxes and names")
    _threshold_option(p)
    _model_option(p)
    gallery_option(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("detect", help="find every face: box, 5 landmarks, confidence (exit 1 if none)")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo(s) in which to find faces")
    p.add_argument("--min-face-size", type=int, default=None, help="smallest face side in pixels")
    p.add_argument("--min-confidence", type=float, default=None, help="detector confidence threshold (0-1)")
    _annotate_option(p, "boxes, face indices and landmarks")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("gallery", help="list, rename, remove or migrate enrolled people")
    gsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = gsub.add_parser("list", help="enrolled people, their photos and the stored threshold")
    r.set_defaults(func=cmd_list)
    r = gsub.add_parser("rename", help="rename a person")
    r.add_argument("old", metavar="OLD", help="the enrolled name")
    r.add_argument("new", metavar="NEW", help="the new name")
    r.set_defaults(func=cmd_rename)
    r = gsub.add_parser(
        "remove",
        help="erase a person (embeddings, face crops, cached embeddings of their photos), or one photo with --photo ID",
    )
    r.add_argument("name", nargs="?", metavar="NAME", help="the person to erase")
    r.add_argument("--photo", type=int, metavar="ID", help="remove only this photo (ids from 'gallery list')")
    r.set_defaults(func=cmd_remove)
    r = gsub.add_parser(
        "migrate",
        help="re-encode the gallery for another encoder from its stored face crops "
        "(or upgrade a gallery of an older facenet-keras)",
    )
    _model_option(r)
    r.set_defaults(func=cmd_migrate)
    for action in gsub.choices.values():
        gallery_option(action)


def _threshold_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="distance threshold tau (default: the gallery's calibrated one, else the encoder's own)",
    )


def _model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="MODEL",
        default=None,
        help="a trained encoder (.keras, from 'facenet-keras train') or an ArcFace-family .onnx file; "
        "default: the pretrained dlib ResNet",
    )
    profile_option(p)


def _annotate_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--annotate",
        metavar="OUT.jpg",
        help=f"write the photo with {what} drawn (with several photos: OUT-<n>.jpg); missing folders are created",
    )


def _check_output(path: str) -> None:
    """Refuse an annotation path that could not be written, before any work is done."""
    from PIL import Image

    out = Path(path)
    if out.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"--annotate {path}: unknown image type {out.suffix or '(no extension)'}; use .jpg or .png")
    if out.is_dir():
        raise ValueError(f"--annotate {path} is a folder; give a file name")
    parent = out.parent.resolve()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--annotate {path}: cannot write in {parent}")


def _save_annotated(image, boxes, labels, out: str, landmarks=None, gated=None) -> None:
    from facenet_keras.faces.annotate import annotate

    picture = annotate(image, boxes, labels, gated=gated)
    if landmarks is not None:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(picture)
        r = max(2, round(max(picture.size) / 250))
        for points in landmarks:
            for x, y in points:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 210, 0))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)


def _name(name: str) -> str:
    from facenet_keras.identity.stores.base import display_name

    return display_name(name)


def cmd_enroll(args) -> int:
    if args.from_folder is not None:
        if args.name is not None:
            print("facenet-keras: error: give NAME PHOTO... or --from-folder DIR, not both", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _enroll_folder(args)
    if args.name is None or not args.photos:
        print("facenet-keras: error: enroll needs NAME and at least one PHOTO (or --from-folder DIR)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.strict:
        print("facenet-keras: error: --strict applies to --from-folder only", file=sys.stderr)
        return EXIT_BAD_INPUT
    from facenet_keras.identity.rules import check_new_name

    name = check_new_name(args.name)  # before any work: a bad name is refused at once
    with open_gallery(args, readonly=False) as g:
        result = g.enroll(name, args.photos, model=args.model, face=args.face, force=args.force)
        total = g.people().get(name, 0)
        path = g.path
    for w in result.warnings:
        warn(w)
    lines = []
    for f in result.faces:
        if f["faces_found"] > 1:
            lines.append(f"{f['photo']}: took face {f['face']} of {f['faces_found']} (box {f['box']})")
    for d in result.duplicates:
        lines.append(f"{d}: already enrolled for {_name(name)}; nothing added")
    if result.ids:
        lines.append(f"enrolled {_name(name)} from {len(result.ids)} photo(s) in {path} ({total} photo(s) in all)")
    else:
        lines.append(f"nothing new to enrol for {_name(name)} in {path} ({total} photo(s) in all)")
    emit(args, {**result.to_dict(), "photos": len(result.ids), "photos_in_all": total, "gallery": str(path)}, lines)
    return EXIT_OK


def _enroll_folder(args) -> int:
    with open_gallery(args, readonly=False) as g:
        report = g.enroll_folder(args.from_folder, model=args.model)
        path = str(g.path)
    counts = report.counts()
    lines = [
        f"  {p.outcome}: {p.path}"
        + (f" ({p.faces} faces)" if p.outcome == "several faces" else "")
        + (f" ({p.detail})" if p.detail and p.outcome in ("duplicate", "unreadable") else "")
        for p in report.photos
        if p.outcome != "enrolled"
    ]
    people = report.people()
    lines.append(
        f"{args.from_folder}: {len(report.photos)} photo(s): "
        + ", ".join(f"{n} {o}" for o, n in counts.items() if n)
        + f"; {len(people)} people enrolled in {path}"
    )
    emit(args, {**report.to_dict(), "gallery": path}, lines)
    return EXIT_BAD_INPUT if args.strict and report.failures else EXIT_OK


def cmd_compare(args) -> int:
    from facenet_keras.identity.recognition import compare

    c = compare(args.photo1, args.photo2, args.threshold, model=args.model)
    verdict = "MATCH" if c.match else "NO MATCH"
    notes = [
        f"{p} has {n} faces: the main one was used" for p, n in zip((args.photo1, args.photo2), c.faces_found) if n > 1
    ]
    emit(
        args,
        {"photo1": args.photo1, "photo2": args.photo2, **c.to_dict()},
        [
            f"{verdict}: {args.photo1} vs {args.photo2}: distance {c.distance:.3f} "
            f"{'<=' if c.match else '>'} threshold {c.threshold:.3f}" + (f" ({'; '.join(notes)})" if notes else "")
        ],
    )
    return EXIT_OK if c.match else EXIT_NO_MATCH


def cmd_verify(args) -> int:
    if args.liveness:
        from .watch import cmd_verify_live

        return cmd_verify_live(args)
    from facenet_keras.identity.recognition import verify

    classifier = None
    if args.classifier:
        from facenet_keras.training.siamese import SiameseClassifier

        classifier = SiameseClassifier.load(args.classifier)
    with open_gallery(args, readonly=True) as g:
        v = verify(args.photo, args.name, g, args.threshold, model=args.model, classifier=classifier)
    note = f" (the photo has {v.faces_found} faces: the main one was used)" if v.faces_found > 1 else ""
    verdict = "MATCH" if v.match else "NO MATCH"
    rule = (
        f"P(same) {v.probability:.3f}"
        if v.probability is not None
        else f"{'<=' if v.match else '>'} threshold {v.threshold:.3f}"
    )
    emit(
        args,
        {"photo": args.photo, **v.to_dict()},
        [f"{verdict}: {args.photo} vs {_name(v.identity)}: distance {v.distance:.3f} {rule}{note}"],
    )
    return EXIT_OK if v.match else EXIT_NO_MATCH


def cmd_recognize(args) -> int:
    from facenet_keras.faces.pipeline import unusable_because
    from facenet_keras.identity.recognition import recognize_batch
    from facenet_keras.images import load_image

    if args.annotate:
        _check_output(args.annotate)
    with open_gallery(args, readonly=True) as g:
        if len(g) == 0:
            print(
                f"note: the gallery {g.path} is empty: nobody can be recognised "
                "(enrol people with 'facenet-keras enroll NAME PHOTO')",
                file=sys.stderr,
            )
        results = recognize_batch(args.photos, g, args.threshold, model=args.model)
    payload, lines, anyone = [], [], False
    for n, (photo, faces) in enumerate(zip(args.photos, results)):
        payload.append({"photo": photo, "faces": [r.to_dict() for r in faces]})
        lines.append(f"{photo}: {len(faces)} face(s)")
        for r in faces:
            x, y, w, h = (int(round(v)) for v in r.box)
            if r.face.gated is not None:
                lines.append(f"  [{x},{y},{w},{h}] not usable ({unusable_because(r.face)}): not recognised")
                continue
            who = (
                _name(r.identity)
                if r.identity
                else (f"not recognised (nearest: {_name(r.nearest)})" if r.nearest else "not recognised")
            )
            lines.append(
                f"  [{x},{y},{w},{h}] {who}  distance {r.distance:.3f}"
                + (f", runner-up {_name(r.runner_up)} {r.runner_up_distance:.3f}" if r.runner_up else "")
            )
            anyone |= r.identity is not None
        if args.annotate:
            out = args.annotate if len(args.photos) == 1 else _numbered(args.annotate, n + 1)
            labels = [r.identity or (r.face.gated or "?") for r in faces]
            _save_annotated(load_image(photo), [r.box for r in faces], labels, out, gated=[r.face.gated for r in faces])
            lines.append(f"  annotated photo written to {out}")
            payload[-1]["annotated"] = out
    emit(args, payload, lines)
    return EXIT_OK if anyone else EXIT_NO_MATCH


def cmd_detect(args) -> int:
    from facenet_keras.faces.detection import FaceDetector
    from facenet_keras.faces.face import LANDMARK_NAMES
    from facenet_keras.faces.pipeline import FacePipeline, unusable_because
    from facenet_keras.images import load_image

    if args.annotate:
        _check_output(args.annotate)
    kwargs = {
        k: v
        for k, v in (("min_face_size", args.min_face_size), ("min_confidence", args.min_confidence))
        if v is not None
    }
    pipe = FacePipeline(detector=FaceDetector(**kwargs))  # detection and the quality gate (no encoder)
    payload, lines, found = [], [], False
    for n, photo in enumerate(args.photos):
        image = load_image(photo)
        faces = sorted(pipe.detect(image), key=lambda f: -f.area)  # largest first: the index --face takes
        found |= bool(faces)
        payload.append({"photo": photo, "faces": [{"index": i, **d.to_dict()} for i, d in enumerate(faces)]})
        lines.append(f"{photo}: {len(faces)} face(s)")
        for i, d in enumerate(faces):
            x, y, w, h = (int(round(v)) for v in d.box)
            points = ", ".join(
                f"{name} ({d.landmarks[j, 0]:.0f},{d.landmarks[j, 1]:.0f})" for j, name in enumerate(LANDMARK_NAMES)
            )
            gate = f"; not usable ({unusable_because(d)})" if d.gated else ""
            lines.append(f"  #{i} [{x},{y},{w},{h}] confidence {d.confidence:.3f}; landmarks: {points}{gate}")
        if args.annotate:
            out = args.annotate if len(args.photos) == 1 else _numbered(args.annotate, n + 1)
            _save_annotated(
                image,
                [d.box for d in faces],
                [f"#{i}" + (f" {d.gated}" if d.gated else "") for i, d in enumerate(faces)],
                out,
                landmarks=[d.landmarks for d in faces],
                gated=[d.gated for d in faces],
            )
            lines.append(f"  annotated photo written to {out}")
            payload[-1]["annotated"] = out
    emit(args, payload, lines)
    return EXIT_OK if found else EXIT_NO_MATCH


def cmd_list(args) -> int:
    with open_gallery(args, readonly=True) as g:
        people = g.people()
        photos = g.photos()
        threshold, space = g.threshold, g.space_id
        payload = {
            "gallery": str(g.path),
            "threshold": None if threshold is None else round(threshold, 4),
            "embedding_space": space,
            "people": [
                {"name": n, "photos": [{"id": p.id, "source": p.source} for p in photos if p.name == n]} for n in people
            ],
        }
        shown = f"{threshold:.4f}" if threshold is not None else "(the encoder's own)"
        lines = [f"{g.path}: {len(people)} people, {len(photos)} photos, threshold {shown}"]
        for n in people:
            lines.append(
                f"  {_name(n)}: " + ", ".join(f"#{p.id} {_name(p.source or '?')}" for p in photos if p.name == n)
            )
    emit(args, payload, lines)
    return EXIT_OK


def cmd_rename(args) -> int:
    with open_gallery(args, readonly=False) as g:
        g.rename(args.old, args.new)
    emit(args, {"renamed": args.old, "to": args.new}, [f"renamed {_name(args.old)} to {_name(args.new)}"])
    return EXIT_OK


def cmd_remove(args) -> int:
    if (args.name is None) == (args.photo is None):
        print("facenet-keras: error: give a NAME or --photo ID (not both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    with open_gallery(args, readonly=False) as g:
        if args.photo is not None:
            g.remove_photo(args.photo)
            emit(args, {"removed_photo": args.photo}, [f"removed photo #{args.photo}"])
        else:
            from facenet_keras.identity.stores.base import normalize_name

            name = normalize_name(args.name)  # reported as stored, not as typed
            n = g.remove(name)
            emit(
                args,
                {"removed": name, "photos": n},
                [f"erased {_name(name)} ({n} photo(s): embeddings, face crops and cached embeddings)"],
            )
    return EXIT_OK


def cmd_migrate(args) -> int:
    with open_gallery(args, readonly=False) as g:
        report = g.migrate(model=args.model)
    lines = []
    if report["schema_upgraded"]:
        lines.append(f"upgraded {report['gallery']} to the current gallery format")
    if report["re_encoded"]:
        lines.append(
            f"re-encoded {report['re_encoded']} photo(s) of {report['gallery']} from their stored face "
            f"crops into {report['space']}"
        )
    if report["threshold_dropped"] is not None:
        lines.append(
            f"dropped the threshold {report['threshold_dropped']:.4f} calibrated for the old encoder: "
            "run 'facenet-keras calibrate ... --save' again"
        )
    if not lines:
        lines.append(f"{report['gallery']} is already in the encoder's embedding space: nothing to do")
    emit(args, report, lines)
    return EXIT_OK


def _numbered(path: str, n: int) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{n}{p.suffix}"))
