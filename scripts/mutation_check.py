"""Plant known bugs one at a time in a temporary copy of the repository and check the tests catch them.

Each mutation is a textual edit of one source file (or, for "dlib-bin missing", a shadow ``dlib``
module that fails to import) and the tests that must catch it. The copy is made once from the
files git tracks (plus untracked, not ignored ones); each mutation is applied, its tests run there
in a fresh pytest session (a private, empty FACENET_KERAS_HOME: nothing cached answers for the
mutated code), and the file is restored. First the same tests run unmutated and must pass.

    python scripts/mutation_check.py                 # all mutations (about 10-15 min on 2 cores)
    python scripts/mutation_check.py --only verify   # those whose name contains "verify"
    python scripts/mutation_check.py --list

Prints a table (mutation | tests | result | seconds) and exits 1 if any mutation survived or the
unmutated baseline failed. Run by ``make mutation``, not by ``make test``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900  # per pytest run: a mutation that makes the tests hang has not been caught
TIMED_OUT = -9


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # path in the repository ("" for none)
    old: str  # exact text, must occur once
    new: str
    tests: tuple[str, ...]  # pytest arguments (files, -k expressions)
    hide_dlib: bool = False  # run as if dlib-bin were not installed
    why: str = field(default="", compare=False)


# enroll_faces' loop tail and the one write after it -> a write per photo inside the loop, so a bad
# photo after good ones leaves the good ones enrolled (the write is no longer all-or-nothing)
ENROLL_OLD = """        )
    embeddings = np.stack(vectors)
    try:
        tau: float | None = resolve_threshold(None, gallery, model)
    except ValueError:
        tau = None  # an encoder without a threshold cannot say what "close" is
    result.warnings = enrolment_warnings(gallery, name, embeddings, sources, digests, tau)
    result.ids = gallery.add(
        name, embeddings, sources=list(sources), boxes=boxes, space_id=space, crops=crops, digests=list(digests)
    )"""
ENROLL_NEW = """        )
        result.ids += gallery.add(
            name, vectors[-1][None], sources=[source], boxes=[chosen.box], space_id=space, crops=[crops[-1]],
            digests=[digests[len(vectors) - 1]],
        )
    embeddings = np.stack(vectors)"""
TEMPLATE_OLD = "[0.8595674595992, 0.2134981538014]"
TEMPLATE_NEW = "[0.9095674595992, 0.2134981538014]"
DOORS = "tests/service/test_every_door.py"
ORACLES = ("tests/test_alignment.py", "tests/test_encoder.py", "tests/test_landmarks.py", "tests/test_detection.py")

MUTATIONS = [
    Mutation(
        "verify decides d < tau",
        "facenet_keras/identity/recognition.py",
        "Verification(distance <= threshold, distance,",
        "Verification(distance < threshold, distance,",
        ("tests/test_decisions.py", "-k", "threshold"),
    ),
    Mutation(
        "recognize decides d < tau",
        "facenet_keras/identity/recognition.py",
        "m.identity if m.distance <= threshold else None",
        "m.identity if m.distance < threshold else None",
        ("tests/test_decisions.py", "-k", "threshold"),
    ),
    Mutation(
        "FAR vs gallery size counts d < tau",
        "facenet_keras/evaluation/metrics.py",
        "m_i = ((d <= threshold) & ~ex)",
        "m_i = ((d < threshold) & ~ex)",
        ("tests/test_evaluation.py",),
    ),
    Mutation(
        "mirrored-chip averaging dropped",
        "facenet_keras/faces/pipeline.py",
        "    if not flip:\n        return encode_chips(",
        "    if True:\n        return encode_chips(",
        ("tests/test_pipeline_defaults.py",),
    ),
    Mutation(
        "default alignment dlib -> mtcnn",
        "facenet_keras/faces/pipeline.py",
        'DEFAULT_ALIGNMENT = "dlib"',
        'DEFAULT_ALIGNMENT = "mtcnn"',
        ("tests/test_pipeline_defaults.py",),
    ),
    Mutation(
        "main face = the largest, not the central one",
        "facenet_keras/faces/pipeline.py",
        "return min(candidates, key=off_centre)",
        "return max(faces, key=lambda f: f.area)",
        ("tests/test_decisions.py", "-k", "main_face"),
    ),
    Mutation(
        "enroll writes each photo as it goes",
        "facenet_keras/identity/recognition.py",
        ENROLL_OLD,
        ENROLL_NEW,
        ("tests/test_decisions.py", "-k", "enrolment"),
    ),
    Mutation(
        "dlib template point +0.05",
        "facenet_keras/faces/alignment.py",
        TEMPLATE_OLD,
        TEMPLATE_NEW,
        ("tests/test_alignment.py", "tests/test_pipeline_defaults.py", "-k", "dlib or pinned"),
    ),
    Mutation(
        "dlib template point +0.05, dlib-bin missing",
        "facenet_keras/faces/alignment.py",
        TEMPLATE_OLD,
        TEMPLATE_NEW,
        ("tests/test_alignment.py", "-k", "dlib"),
        hide_dlib=True,
    ),
    Mutation("dlib-bin missing (oracle tests must fail, not skip)", "", "", "", ORACLES, hide_dlib=True),
    # the six defects of "one pipeline and one rulebook behind every door", each planted back
    Mutation(
        "serve answers a gallery of another space",
        "facenet_keras/cli/serve.py",
        "        check_gallery_space(g, encoder)",
        "        pass",
        (DOORS, "-k", "another_space"),
    ),
    Mutation(
        "a photo with several faces is enrolled without a choice",
        "facenet_keras/identity/rules.py",
        "        if len(usable) > 1:",
        "        if len(usable) > 99:",
        (DOORS, "-k", "several_faces"),
    ),
    Mutation(
        "no quality gate: non-faces and tiny faces are named",
        "facenet_keras/faces/pipeline.py",
        "        if self.gate is None:  # judged and reported, but nothing is turned away",
        "        if True:",
        (DOORS, "-k", "button or too_small"),
    ),
    Mutation(
        "watch cuts dlib's 150 px chips whatever the encoder",
        "facenet_keras/live/watch.py",
        "            emb = self.pipe.embed(self.pipe.chips(image, [dets[i] for i in idx]))",
        "            emb = self.pipe.embed(__import__('facenet_keras.faces.pipeline', fromlist=['f'])"
        ".face_chips(image, [dets[i] for i in idx]))",
        (DOORS, "-k", "own_chips"),
    ),
    Mutation(
        "fk.align_faces aligns onto MTCNN's template, not the pipeline's chip",
        "facenet_keras/__init__.py",
        '    "align_faces": "faces.pipeline",',
        '    "align_faces": "faces.alignment",',
        (DOORS, "-k", "own_chips"),
    ),
    Mutation(
        "gallery migrate upgrades only SQLite",
        "facenet_keras/identity/recognition.py",
        "    if store.needs_upgrade:  # every backend declares its schema upgrade (the store protocol)",
        '    if store.needs_upgrade and type(store).__name__ == "SQLiteStore":',
        ("tests/test_gallery_backends.py", "-k", "migrate_upgrades_an_older_schema"),
    ),
    Mutation(
        "a door decides with the pretrained encoder's threshold, not its own",
        "facenet_keras/identity/rules.py",
        "        threshold = model.threshold if isinstance(model, FacePipeline) else encoder_threshold(model)",
        "        threshold = encoder_threshold(None)",
        (DOORS, "-k", "own_threshold"),
    ),
    Mutation(
        "the accurate profile scales by sqrt(0.5 * s), not sqrt(0.5 / s)",
        "facenet_keras/faces/profiles.py",
        "    return float(np.sqrt(FUSION_WEIGHT / s))",
        "    return float(np.sqrt(FUSION_WEIGHT * s))",
        ("tests/test_profiles.py",),
    ),
    Mutation(
        "the accurate profile's SFace part is not mirror averaged",
        "facenet_keras/faces/pipeline.py",
        "            embed_chips(c, model=m, flip=self.flip, batch_size=self.batch_size)"
        " for c, m in zip(chips, self.models)",
        "            embed_chips(c, model=m, flip=self.flip and c.shape[1] == 150, batch_size=self.batch_size)"
        " for c, m in zip(chips, self.models)",
        ("tests/test_profiles.py", "-k", "reproduce"),
    ),
    Mutation(
        "a gallery of the accurate profile opens with the default encoder",
        "facenet_keras/identity/rules.py",
        "    return own if own is not None else profile_of_space(gallery.space_id)",
        "    return own",
        ("tests/test_profile_doors.py", "-k", "cli_profile_flags or python_api"),
    ),
    Mutation(
        "a brought .onnx encoder gets dlib's threshold instead of none",
        "facenet_keras/faces/pipeline.py",
        "        if _is_onnx(path):  # a file you bring ships no threshold for this pipeline: never guessed\n"
        "            return None\n",
        "        if _is_onnx(path):  # a file you bring ships no threshold for this pipeline: never guessed\n"
        "            return PRETRAINED_THRESHOLD\n",
        ("tests/test_byo_onnx.py", "-k", "threshold"),
    ),
    Mutation(
        "an .onnx encoder fed another route's chips, not ArcFace's",
        "facenet_keras/faces/pipeline.py",
        "        return _alignment.arcface_chips(image, np.stack([d.landmarks for d in detections]))\n",
        "        return _alignment.align_faces(image, np.stack([d.landmarks for d in detections]), size=size)\n",
        ("tests/test_byo_onnx.py", "-k", "arcface_chips"),
    ),
    Mutation(
        "an ONNX constant of shape (C,) on NCHW taken per channel (ONNX applies it along the width)",
        "facenet_keras/models/onnx_encoder.py",
        "    if shape != want:\n        return None\n",
        "    if int(np.prod(shape)) != channels:\n        return None\n",
        ("tests/test_onnx_encoder.py", "-k", "broadcasts"),
    ),
    Mutation(
        "a folded batch norm drops the layer's own bias scaling",
        "facenet_keras/models/folding.py",
        "(bias * scale + shift)",
        "(bias + shift)",
        ("tests/test_onnx_encoder.py", "-k", "synthetic_graph_matches"),
    ),
    Mutation(
        "clustering cuts every profile with the fast profile's balance",
        "facenet_keras/library/clustering.py",
        "    balance = cal.balance if balance is None else float(balance)\n",
        "    balance = ENCODER_CALIBRATION.balance if balance is None else float(balance)\n",
        ("tests/test_library_clustering.py", "-k", "own_balance"),
    ),
    Mutation(
        "the clustering cut stays at the 1:1 threshold whatever the number of faces",
        "facenet_keras/library/clustering.py",
        "    if excess(hi) <= 0:\n",
        "    if True:\n",
        ("tests/test_clustering_held_out.py",),
    ),
    Mutation(
        "a model layer uses a TensorFlow op instead of keras.ops",
        "facenet_keras/models/layers.py",
        "        return inputs * self.gamma + self.beta\n",
        "        import tensorflow as tf\n\n        return tf.nn.bias_add(inputs * self.gamma, self.beta)\n",
        ("tests/test_backends.py",),
    ),
]


def copy_repo(dest: Path) -> None:
    """The files git tracks plus untracked, not ignored ones (the working tree as it is)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def shared_data() -> str | None:
    for c in (os.environ.get("FACENET_KERAS_SHARED_DATA"), REPO.parent / "shared" / "data"):
        if c and (Path(c) / "faces").is_dir():
            return str(c)
    return None


def run_tests(copy: Path, args: tuple[str, ...], hide_dlib: bool, log: Path) -> tuple[int, float, str]:
    env = dict(os.environ)
    path = [str(copy)]
    if hide_dlib:
        shadow = copy / ".mutation-shadow"
        (shadow / "dlib").mkdir(parents=True, exist_ok=True)
        (shadow / "dlib" / "__init__.py").write_text(
            "raise ImportError(\"No module named 'dlib' (hidden by mutation_check: dlib-bin not installed)\")\n"
        )
        path.insert(0, str(shadow))
    env["PYTHONPATH"] = os.pathsep.join(path + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("FACENET_KERAS_HOME", None)  # the suite's session fixture makes a private one anyway
    data = shared_data()
    if data:
        env["FACENET_KERAS_SHARED_DATA"] = data
    env["CI"] = "1"  # data must be present: a skip is not a pass
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", *args],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:  # a hang is not a catch: the tests must fail, not stall
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        log.write_text(out)
        return TIMED_OUT, time.perf_counter() - t0, f"timed out after {TIMEOUT_S} s"
    seconds = time.perf_counter() - t0
    log.write_text(proc.stdout + proc.stderr)
    summary = next((line for line in reversed(proc.stdout.splitlines()) if line.strip()), "")
    return proc.returncode, seconds, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", default=[], help="run the mutations whose name contains this text (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and the logs")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(o.lower() in m.name.lower() for o in args.only)]
    if args.list or not chosen:
        for m in MUTATIONS:
            print(f"{m.name}: {m.file or '(no file)'} | {' '.join(m.tests)}")
        return 0 if chosen else 2

    work = Path(tempfile.mkdtemp(prefix="mutation-check-"))
    copy, logs = work / "repo", work / "logs"
    logs.mkdir(parents=True)
    copy_repo(copy)
    for m in chosen:  # every mutation must apply to the pristine code, exactly once
        if m.file:
            count = (copy / m.file).read_text().count(m.old)
            if count != 1:
                print(f"cannot plant {m.name!r}: its text occurs {count} times in {m.file}", file=sys.stderr)
                return 2

    rows, ok = [], True
    baseline = sorted({t for m in chosen for t in m.tests if t.startswith("tests/")})
    code, seconds, summary = run_tests(copy, tuple(baseline), False, logs / "baseline.log")
    rows.append(("(none: baseline)", " ".join(baseline), "passed" if code == 0 else f"FAILED ({summary})", seconds))
    print(f"baseline: exit {code} in {seconds:.0f} s: {summary}", flush=True)
    if code != 0:
        ok = False
    else:
        for i, m in enumerate(chosen, 1):
            target = copy / m.file if m.file else None
            original = target.read_text() if target else ""
            if target:
                target.write_text(original.replace(m.old, m.new, 1))
            try:
                code, seconds, summary = run_tests(copy, m.tests, m.hide_dlib, logs / f"mutation-{i}.log")
            finally:
                if target:
                    target.write_text(original)
                shutil.rmtree(copy / ".mutation-shadow", ignore_errors=True)
            caught = code not in (0, TIMED_OUT)
            ok &= caught
            rows.append((m.name, " ".join(m.tests), f"caught ({summary})" if caught else "SURVIVED", seconds))
            print(f"{m.name}: {'caught' if caught else 'SURVIVED'} in {seconds:.0f} s: {summary}", flush=True)

    print("\n| mutation | tests run | result | seconds |\n|---|---|---|---|")
    for name, tests, result, seconds in rows:
        print(f"| {name} | `{tests}` | {result} | {seconds:.0f} |")
    if args.keep:
        print(f"\ncopy and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
