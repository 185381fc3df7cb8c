"""Sub-commands for the everyday job: enroll, verify, recognize, detect, gallery."""
from __future__ import annotations

import argparse
import sys

from . import EXIT_BAD_INPUT, EXIT_NO_MATCH, EXIT_OK, emit


def register(sub) -> None:
    p = sub.add_parser("enroll", help="enrol a person from one or more photos (one-shot, no retraining)")
    p.add_argument("name", help="the person's name")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    _model_option(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("verify", help="1:1: is the person in PHOTO the enrolled NAME? (exit 0 match, 1 no match)")
    p.add_argument("photo", metavar="PHOTO")
    p.add_argument("name", metavar="NAME")
    _threshold_option(p)
    _model_option(p)
    p.add_argument("--classifier", metavar="HEAD.keras", default=None,
                   help="decide with a trained Siamese classifier (SiameseClassifier.save) instead of the threshold")
    p.add_argument("--liveness", action="store_true",
                   help="PHOTO is a short video clip: refuse the match unless the face is live (see README)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("recognize", help="1:K: who is each face in the photos? (exit 0 if anyone is recognised)")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--annotate", metavar="OUT.jpg",
                   help="write the photo with boxes and names drawn (with several photos: OUT-<n>.jpg)")
    _threshold_option(p)
    _model_option(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("detect", help="find every face: box, 5 landmarks, confidence (exit 1 if none)")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--min-face-size", type=int, default=None, help="smallest face side in pixels")
    p.add_argument("--min-confidence", type=float, default=None, help="detector confidence threshold (0-1)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("gallery", help="list, rename or remove enrolled people")
    gsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    gsub.add_parser("list", help="enrolled people, their photos and the stored threshold").set_defaults(func=cmd_list)
    r = gsub.add_parser("rename", help="rename a person")
    r.add_argument("old")
    r.add_argument("new")
    r.set_defaults(func=cmd_rename)
    r = gsub.add_parser("remove", help="remove a person, or one photo with --photo ID")
    r.add_argument("name", nargs="?")
    r.add_argument("--photo", type=int, metavar="ID", help="remove only this photo (ids from 'gallery list')")
    r.set_defaults(func=cmd_remove)
    for action in gsub.choices.values():
        from . import _add_global_options

        _add_global_options(action, default=False)


def _threshold_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, default=None,
                   help="distance threshold tau (default: the gallery's calibrated one, else the package default)")


def _model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="MODEL.keras", default=None,
                   help="a trained encoder (from 'facenet-keras train'); default: the pretrained dlib ResNet")


def _gallery(args):
    from facenet_keras.gallery import FaceGallery

    return FaceGallery(args.gallery)


def cmd_enroll(args) -> int:
    with _gallery(args) as g:
        ids = g.enroll(args.name, args.photos, model=args.model)
        emit(args, {"name": args.name, "photo_ids": ids, "photos": len(ids), "gallery": str(g.path)},
              [f"enrolled {args.name!r} from {len(ids)} photo(s) in {g.path} "
               f"({g.people()[args.name]} photo(s) in all)"])
    return EXIT_OK


def cmd_verify(args) -> int:
    if args.liveness:
        from .watch import cmd_verify_live

        return cmd_verify_live(args)
    from facenet_keras.recognition import verify

    classifier = None
    if args.classifier:
        from facenet_keras.siamese import SiameseClassifier

        classifier = SiameseClassifier.load(args.classifier)
    with _gallery(args) as g:
        v = verify(args.photo, args.name, g, args.threshold, model=args.model, classifier=classifier)
    note = f" (the photo has {v.faces_found} faces: the main one was used)" if v.faces_found > 1 else ""
    verdict = "MATCH" if v.match else "NO MATCH"
    rule = (f"P(same) {v.probability:.3f}" if v.probability is not None else
            f"{'<=' if v.match else '>'} threshold {v.threshold:.3f}")
    emit(args, {"photo": args.photo, **v.to_dict()},
          [f"{verdict}: {args.photo} vs {args.name!r}: distance {v.distance:.3f} {rule}{note}"])
    return EXIT_OK if v.match else EXIT_NO_MATCH


def cmd_recognize(args) -> int:
    from facenet_keras.annotate import annotate
    from facenet_keras.images import load_image
    from facenet_keras.recognition import recognize_batch

    with _gallery(args) as g:
        if len(g) == 0:
            print(f"note: the gallery {g.path} is empty: nobody can be recognised "
                  "(enrol people with 'facenet-keras enroll NAME PHOTO')", file=sys.stderr)
        results = recognize_batch(args.photos, g, args.threshold, model=args.model)
    payload, lines, anyone = [], [], False
    for n, (photo, faces) in enumerate(zip(args.photos, results)):
        payload.append({"photo": photo, "faces": [r.to_dict() for r in faces]})
        lines.append(f"{photo}: {len(faces)} face(s)")
        for r in faces:
            x, y, w, h = (int(round(v)) for v in r.box)
            who = r.identity if r.identity else f"not recognised (nearest: {r.nearest})"
            lines.append(f"  [{x},{y},{w},{h}] {who}  distance {r.distance:.3f}"
                         + (f", runner-up {r.runner_up} {r.runner_up_distance:.3f}" if r.runner_up else ""))
            anyone |= r.identity is not None
        if args.annotate:
            out = args.annotate if len(args.photos) == 1 else _numbered(args.annotate, n + 1)
            labels = [r.identity or "?" for r in faces]
            annotate(load_image(photo), [r.box for r in faces], labels).save(out)
            lines.append(f"  annotated photo written to {out}")
            payload[-1]["annotated"] = out
    emit(args, payload, lines)
    return EXIT_OK if anyone else EXIT_NO_MATCH


def cmd_detect(args) -> int:
    from facenet_keras.detection import FaceDetector
    from facenet_keras.images import load_image

    kwargs = {k: v for k, v in (("min_face_size", args.min_face_size),
                                ("min_confidence", args.min_confidence)) if v is not None}
    detector = FaceDetector(**kwargs)
    payload, lines, found = [], [], False
    for photo in args.photos:
        faces = detector.detect(load_image(photo))
        found |= bool(faces)
        payload.append({"photo": photo, "faces": [d.to_dict() for d in faces]})
        lines.append(f"{photo}: {len(faces)} face(s)")
        for d in faces:
            x, y, w, h = (int(round(v)) for v in d.box)
            lines.append(f"  [{x},{y},{w},{h}] confidence {d.confidence:.3f}")
    emit(args, payload, lines)
    return EXIT_OK if found else EXIT_NO_MATCH


def cmd_list(args) -> int:
    with _gallery(args) as g:
        people = g.people()
        photos = g.photos()
        payload = {"gallery": str(g.path), "threshold": g.threshold, "model": g.model_id,
                   "people": [{"name": n, "photos": [{"id": p.id, "source": p.source} for p in photos
                                                     if p.name == n]} for n in people]}
        lines = [f"{g.path}: {len(people)} people, {len(photos)} photos, threshold "
                 f"{g.threshold if g.threshold is not None else '(package default)'}"]
        for n in people:
            lines.append(f"  {n}: " + ", ".join(f"#{p.id} {p.source}" for p in photos if p.name == n))
    emit(args, payload, lines)
    return EXIT_OK


def cmd_rename(args) -> int:
    with _gallery(args) as g:
        g.rename(args.old, args.new)
    emit(args, {"renamed": args.old, "to": args.new}, [f"renamed {args.old!r} to {args.new!r}"])
    return EXIT_OK


def cmd_remove(args) -> int:
    if (args.name is None) == (args.photo is None):
        print("facenet-keras: error: give a NAME or --photo ID (not both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    with _gallery(args) as g:
        if args.photo is not None:
            g.remove_photo(args.photo)
            emit(args, {"removed_photo": args.photo}, [f"removed photo #{args.photo}"])
        else:
            n = g.remove(args.name)
            emit(args, {"removed": args.name, "photos": n}, [f"removed {args.name!r} ({n} photo(s))"])
    return EXIT_OK


def _numbered(path: str, n: int) -> str:
    from pathlib import Path

    p = Path(path)
    return str(p.with_name(f"{p.stem}-{n}{p.suffix}"))
