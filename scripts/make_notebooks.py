"""Write the follow-along notebooks in ``notebooks/`` from the Python source below.

The notebooks are generated, so edit them here. They are stored WITH their outputs, from a run at
full settings: ``python scripts/make_notebooks.py --execute`` (``make notebooks``) generates,
executes and stores them, and saves each notebook's README figure to ``docs/images/``; without
``--execute`` it writes them without outputs. ``--check`` exits 1 when a stored notebook's cells
differ from what this script generates, or when it was not executed top to bottom at full
settings (so the stored outputs come from the current notebook code; CI-friendly).

Conventions shared by every notebook:

* the first code cell reads ``FAST = os.environ.get("FACENET_KERAS_FAST") == "1"``; the test suite
  sets it, and every long step (training epochs, optimisation steps, image sizes, photo counts)
  shrinks so the notebook runs in about a minute on a small CPU;
* images are public-domain ones that ship in installed packages (matplotlib's ``grace_hopper.jpg``,
  scikit-image's sample images), or the project's development data in ``../shared/data`` when it
  sits beside the repository (``FACENET_KERAS_SHARED_DATA`` points elsewhere,
  ``FACENET_KERAS_NO_SHARED_DATA=1`` ignores it);
* a code cell tagged ``readme-figure`` makes the picture saved for the README;
* stored outputs show only public-domain pictures and figures of numbers, never a photo from
  ``../shared/data`` (it may not be redistributed): a cell that draws such photos is tagged
  ``private-photos`` and is stored without its pictures (its text output is kept); progress bars
  and other stderr output are not stored.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
IMAGES = ROOT / "docs" / "images"
PRIVATE_TAG = "private-photos"
README_TAG = "readme-figure"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")

# The first code cell of every notebook: the CI switch and where the shared data is.
SETUP = '''\
%matplotlib inline
import os
import warnings
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt

plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": 72})   # stored outputs stay small

# The test suite sets FACENET_KERAS_FAST=1: every long step shrinks so CI runs the notebook fast.
FAST = os.environ.get("FACENET_KERAS_FAST") == "1"


def find_shared_data():
    """The project's development data (../shared/data beside the repository), or None."""
    if os.environ.get("FACENET_KERAS_NO_SHARED_DATA") == "1":
        return None
    for candidate in (os.environ.get("FACENET_KERAS_SHARED_DATA"), "../../shared/data", "../shared/data"):
        if candidate and (Path(candidate) / "faces").is_dir():
            return Path(candidate).resolve()
    return None


SHARED = find_shared_data()
print(f"FAST={FAST}; shared data: {SHARED or 'not found (bundled public-domain images only)'}")'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# =============================================================================================
# 01 face verification and recognition
# =============================================================================================
def notebook_01():
    return [
        md(r"""
# 1. Face verification and recognition

Two questions, one tool:

* **verification (1:1)**: *is this the person they claim to be?* (unlocking a phone);
* **recognition (1:K)**: *who is this, if anyone we know?* (letting employees through a door).

Both rest on an **encoder** $f$ that maps a face photo to a short vector, its *encoding* or
*embedding*, such that photos of the same person land close together and photos of different people
far apart. Then a decision is just a distance compared with a threshold. This notebook uses the
package's pretrained encoder (dlib's ResNet, 128 numbers per face) on two public-domain portraits
that ship with matplotlib and scikit-image: Rear Admiral Grace Hopper and astronaut Eileen Collins.
"""),
        code(SETUP),
        code(r"""
import facenet_keras as fk
from facenet_keras.demo import changed_copy, sample_portraits, side_by_side

people = sample_portraits()                      # name -> RGB uint8 array
grace, eileen = people["Grace Hopper"], people["Eileen Collins"]

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, (name, photo) in zip(axes, people.items()):
    ax.imshow(photo); ax.set_title(f"{name}  {photo.shape[1]}x{photo.shape[0]}"); ax.axis("off")
plt.show()
"""),
        md(r"""
## The course's three functions

The course builds face verification and recognition from three functions, and so can you, with the
same names, on any photo (the face is found and aligned for you):

* `img_to_encoding(image_path, model)`: a photo -> its **encoding** $f(x)$, 128 numbers;
* `verify(image_path, identity, database, model)`: *is this the claimed person?* -> `(dist, door_open)`;
* `who_is_it(image_path, database, model)`: *who is this?* -> `(min_dist, identity)`.

The `database` is a plain dict, name -> encoding: enrolling someone is one line, from one photo.
(`model=None` is the package's pretrained encoder. Unlike the course, `who_is_it` answers
`identity=None` for a stranger instead of the nearest name.)
"""),
        code(r'''
import tempfile

from PIL import Image
from skimage import data as skdata

from facenet_keras.course import img_to_encoding, verify, who_is_it

photo_dir = Path(tempfile.mkdtemp(prefix="facenet-course-"))


def save(photo, name):
    """Write an RGB array to photo_dir/name and return the path (the course works on image files)."""
    path = photo_dir / name
    Image.fromarray(photo).save(path)
    return str(path)


database = {"grace": img_to_encoding(save(grace, "grace.jpg")),
            "eileen": img_to_encoding(save(eileen, "eileen.png"))}
print({name: encoding.shape for name, encoding in database.items()})
'''),
        code(r"""
camera = save(changed_copy(grace), "camera_0.jpg")          # someone at the door: a new picture of Grace
for claim in ("grace", "eileen"):
    dist, door_open = verify(camera, claim, database)
    print(f"claims to be {claim}: dist = {dist:.3f} ->",
          f"It's {claim}, welcome in!" if door_open else f"It's not {claim}, please go away")

cameraman = save(np.repeat(skdata.camera()[..., None], 3, axis=-1), "camera_1.png")   # not enrolled
for path in (camera, cameraman):
    min_dist, identity = who_is_it(path, database)
    print(f"{Path(path).name}: min_dist = {min_dist:.3f} ->",
          f"it's {identity}" if identity else "Not in the database.")
"""),
        md(r"""
The rest of this notebook opens the box: what an encoding is, how a face becomes a chip, the
distance and its threshold, and the package's own API, which does the same with more detail
(`fk.verify`, `fk.recognize`, `fk.compare`, a persistent `FaceGallery`) and at scale.

## What an encoding is

The encoder is a deep ConvNet trained (on millions of photos of thousands of people) so that
$\lVert f(x_1) - f(x_2) \rVert_2$ is small for two photos of one person and large otherwise. It is
never trained on the people we will recognise: the embedding is *general*, which is what makes
one-shot enrolment possible later. It takes an aligned 150x150 face chip and returns 128 numbers.
"""),
        code(r"""
encoder = fk.load_encoder()                      # pretrained weights, converted once and cached
print(f"{encoder.name}: input {encoder.input_shape} -> output {encoder.output_shape}, "
      f"{encoder.count_params():,} parameters")
"""),
        md(r"""
## From a photo to a chip

The encoder wants every face the same way: a face detector (MTCNN) finds each face and five
landmarks (eyes, nose, mouth corners); a similarity transform (rotation, scale, shift) then maps the
face's landmarks onto a fixed template, so the eyes always land on the same pixels of the chip.
`fk.align_faces` cuts exactly the chips the pipeline feeds the encoder (its size, its alignment),
so `fk.encode_chips(fk.align_faces(photo))` lands in the same embedding space as a gallery.
"""),
        code(r"""
detections = {name: fk.detect_faces(photo) for name, photo in people.items()}
chips = {name: fk.align_faces(people[name], dets) for name, dets in detections.items()}

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1.3, 1, 1.3, 1]})
for i, name in enumerate(people):
    (det,) = detections[name]
    x, y, w, h = det.box
    ax = axes[2 * i]
    ax.imshow(people[name])
    ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, color="lime", lw=2))
    ax.plot(*det.landmarks.T, "o", color="yellow", ms=4)
    ax.set_title(f"{name}: confidence {det.confidence:.3f}", fontsize=9); ax.axis("off")
    axes[2 * i + 1].imshow(chips[name][0]); axes[2 * i + 1].set_title("aligned 150x150 chip", fontsize=9)
    axes[2 * i + 1].axis("off")
plt.show()
"""),
        md(r"""
## Encode two photos

`encode_chips` runs the network on a batch of chips. The numbers themselves mean nothing one by
one; only distances between encodings do. Below: Grace's encoding, the encoding of a *changed
copy* of her photo (cropped, rescaled, brighter, mirrored), and Eileen's.
"""),
        code(r"""
probe = changed_copy(grace)                      # same person, different picture
(probe_chip,) = fk.align_faces(probe, fk.detect_faces(probe)[:1])
emb = fk.encode_chips(np.stack([chips["Grace Hopper"][0], probe_chip, chips["Eileen Collins"][0]]))
labels = ["Grace Hopper", "Grace Hopper (changed copy)", "Eileen Collins"]
print("encodings:", emb.shape, emb.dtype)

fig, axes = plt.subplots(1, 3, figsize=(12, 2.6))
lim = np.abs(emb).max()
for ax, e, label in zip(axes, emb, labels):
    ax.imshow(e.reshape(8, 16), cmap="coolwarm", vmin=-lim, vmax=lim)
    ax.set_title(label, fontsize=9); ax.set_xticks([]); ax.set_yticks([])
fig.suptitle("128 numbers per face, drawn as 8x16 tiles")
plt.show()
"""),
        md(r"""
## The distance $d$ and the threshold $\tau$

$$d(x_1, x_2) = \lVert f(x_1) - f(x_2) \rVert_2, \qquad \text{same person} \iff d \le \tau .$$

For this encoder the classic threshold is $\tau = 0.6$: same-person pairs are mostly well below
it, different people mostly above. (`facenet-keras calibrate` picks $\tau$ from your own data.)
"""),
        code(r"""
tau = fk.DEFAULT_THRESHOLD
d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
print(f"d(Grace, changed copy of Grace) = {d[0, 1]:.3f}  -> same person: {d[0, 1] <= tau}")
print(f"d(Grace, Eileen)                = {d[0, 2]:.3f}  -> same person: {d[0, 2] <= tau}")

fig, ax = plt.subplots(figsize=(6, 2.4))
pairs = {"Grace vs her changed copy": d[0, 1], "Grace vs Eileen": d[0, 2], "changed copy vs Eileen": d[1, 2]}
ax.barh(list(pairs), list(pairs.values()), color=["tab:green" if v <= tau else "tab:red" for v in pairs.values()])
ax.axvline(tau, color="black", ls="--", label=f"threshold tau = {tau}")
ax.set_xlabel("Euclidean distance between encodings"); ax.legend(loc="lower right")
plt.show()
"""),
        md(r"""
## `verify`: a 1:1 claim against a gallery

A **gallery** stores the encodings of enrolled people (in an SQLite file). Enrolment is *one-shot*:
one photo is enough, and nothing is retrained; the photo's encoding is simply stored. `verify`
detects the face in the probe, encodes it and compares it with the claimed identity's encodings.
"""),
        code(r"""
import tempfile

workdir = Path(tempfile.mkdtemp(prefix="facenet-notebook-"))
gallery = fk.FaceGallery(workdir / "gallery.sqlite")
gallery.enroll("Grace Hopper", grace)            # one photo, one row in the gallery
print(gallery, gallery.people())

for photo, text in [(changed_copy(grace, mirror=False, scale=0.5), "a half-size copy of Grace"),
                    (eileen, "the astronaut")]:
    v = fk.verify(photo, "Grace Hopper", gallery)
    print(f"claim '{text} is Grace Hopper': match={v.match}  (d = {v.distance:.3f}, tau = {v.threshold})")
"""),
        md(r"""
Two photos and no gallery at all: `fk.compare` (or `facenet-keras compare A.jpg B.jpg` in a shell,
exit code 0 for a match, 1 for none) answers with the same rule.
"""),
        code(r"""
for a, b, text in [(grace, changed_copy(grace), "Grace vs her changed copy"), (grace, eileen, "Grace vs Eileen")]:
    c = fk.compare(a, b)
    print(f"{text:26s}: match={c.match}  (d = {c.distance:.3f}, tau = {c.threshold})")
"""),
        md(r"""
## `recognize`: who is it, or *not recognised*

Recognition searches the whole gallery for the nearest enrolled encoding; when even the nearest is
farther than $\tau$ the answer is *not recognised* (`identity is None`) rather than the wrong name.
"""),
        code(r"""
(r,) = fk.recognize(eileen, gallery)
print(f"identity={r.identity!r}: nearest is {r.nearest!r} at d = {r.distance:.3f} > tau = {r.threshold}")
assert r.identity is None                        # a stranger is not forced onto an enrolled name
"""),
        md(r"""
Enrolment can also take **precomputed encodings**: here we add Eileen from the encoding computed
earlier, without running the network again (useful when encodings come from a batch job).
"""),
        code(r"""
gallery.add("Eileen Collins", emb[2])           # (128,) or (N, 128) float32
print(gallery.people())
(r,) = fk.recognize(changed_copy(eileen, mirror=False, brightness=0.8), gallery)
print(f"now: identity={r.identity!r} at d = {r.distance:.3f}; runner-up {r.runner_up!r} at {r.runner_up_distance:.3f}")
"""),
        md(r"""
## An annotated group photo

A made-up group photo: changed copies of the two enrolled women and scikit-image's *cameraman*,
who is not enrolled. Every face is found, judged, encoded and looked up in one call. A face the
quality gate turns away (`r.face.gated`: "too small", "not a face?" or "low quality") is never
named, whoever it looks like: it is drawn grey with its reason. The cameraman's face, half hidden
behind his camera, is one the detector is unsure of (score below the gate's 0.89): the gate reports
"not a face?" rather than guess.
"""),
        code(
            r"""
from skimage import data as skdata

from facenet_keras.faces.annotate import annotate

cameraman = np.repeat(skdata.camera()[..., None], 3, axis=-1)       # grayscale -> RGB
group = side_by_side(changed_copy(eileen, mirror=False, brightness=0.8), cameraman, changed_copy(grace),
                     height=300 if FAST else 400)
results = fk.recognize(group, gallery)
labels = [f"not usable: {r.face.gated}" if r.face.gated else f"{r.identity or 'not recognised'} ({r.distance:.2f})"
          for r in results]
for r, label in zip(results, labels):
    print(f"box {np.round(r.box).astype(int)}: {label}")
picture = annotate(group, [r.box for r in results], labels,
                   known=[r.identity is not None for r in results], gated=[r.face.gated for r in results])
assert sorted(r.identity or "?" for r in results) == ["?", "Eileen Collins", "Grace Hopper"]
""",
        ),
        code(
            r"""
fig, ax = plt.subplots(figsize=(11, 4))
ax.imshow(picture); ax.axis("off")
ax.set_title("recognize(): green = enrolled person found, red = not recognised, grey = not usable")
plt.show()
""",
            "readme-figure",
        ),
        md(r"""
## At scale: a folder of people

The course's `database` dict holds a handful of people. A `FaceGallery` holds many, on disk, and
`enroll_folder` enrols a whole folder (one sub-folder per person; `facenet-keras enroll
--from-folder DIR` in a shell) with a report for every photo: enrolled, no face, several faces
(refused: which face is the person would be a guess), duplicate, unreadable. The development photos
in `../shared/data/faces` are 186 photos of 44 people; nothing of them is shown here but names and
numbers (the photos may not be redistributed).
"""),
        code(r"""
if SHARED is not None:
    folder = SHARED / "faces"
    if FAST:   # a few people with small photos, linked into a temporary folder
        folder = Path(tempfile.mkdtemp(prefix="facenet-folder-"))
        for name in ("dlib_john_salley", "dlib_john_savage", "deepface_01", "bbt_amy"):
            (folder / name).symlink_to(SHARED / "faces" / name)
    big = fk.FaceGallery(workdir / "people.sqlite")
    report = big.enroll_folder(folder)
    print("photos:", report.counts())
    for p in report.photos:
        if p.outcome != "enrolled":
            print(f"  {p.outcome}: {Path(p.path).parent.name}/{Path(p.path).name}"
                  + (f" ({p.faces} faces)" if p.faces > 1 else ""))
    print(f"{len(big.people())} people enrolled, {len(big.photos())} encodings")
    # the course's who_is_it takes the gallery as its database too
    probe = next(p for p in report.photos if p.outcome == "enrolled")
    min_dist, identity = who_is_it(probe.path, big)
    print(f"who_is_it on one of the enrolled photos, the gallery as its database: {identity} (min_dist {min_dist:.3f})")
else:
    print("../shared/data not found: skipping the folder enrolment")
"""),
        md(r"""
## Why 1:K needs a stricter threshold than 1:1

At threshold $\tau$ a single comparison with someone else is a false accept with a small
probability $p$ (the 1:1 *false accept rate*, FAR). A stranger at the door is compared with all $K$
enrolled people and is let in if **any** of them is within $\tau$:

$$\text{FAR}_{1:K} \approx 1 - (1 - p)^K \approx K\,p \quad (\text{while small}).$$

A threshold that is fine for one claim lets in strangers once the gallery holds hundreds of people.
Below, real distances measure this on photos of many people (LFW, from `../shared/data` when
present): each person enrolled from one photo, probed with another. Without the data a *simulated*
distance matrix illustrates the same arithmetic.
"""),
        code(r"""
from facenet_keras import evaluation as ev
from facenet_keras.evaluation import plots

if SHARED is not None:
    from facenet_keras.evaluation.protocols import primary_embeddings

    root = SHARED / "lfw-dev" / "images"
    folders = {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}
    names = [n for n, photos in folders.items() if len(photos) >= 2][: 20 if FAST else 150]
    # the main face of each photo, through an on-disk cache (a second run skips the network)
    embs, failed = primary_embeddings([folders[n][0] for n in names] + [folders[n][1] for n in names])
    first, second = embs[: len(names)], embs[len(names):]
    keep = [i for i in range(len(names)) if first[i] is not None and second[i] is not None]
    names = np.array([names[i] for i in keep])
    enrolled, probes = np.stack([first[i] for i in keep]), np.stack([second[i] for i in keep])
    D, identities = ev.identity_distances(enrolled, names, probes)    # (probes, people)
    own = identities[None, :] == names[:, None]                        # the probe's own identity
    source = f"LFW, {len(names)} people"
else:  # illustration only: genuine ~ N(0.40, 0.08), impostor ~ N(0.80, 0.08), like this encoder
    rng = np.random.default_rng(0)
    D = rng.normal(0.80, 0.08, (40, 40))
    np.fill_diagonal(D, rng.normal(0.40, 0.08, 40))
    own = np.eye(40, dtype=bool)
    source = "SIMULATED distances, ../shared/data not found"
genuine, impostor = D[own], D[~own]
print(f"{source}: {genuine.size} genuine pairs, {impostor.size} impostor pairs")
fig = plots.plot_verification(np.concatenate([genuine, impostor]),
                              np.r_[np.ones(genuine.size, bool), np.zeros(impostor.size, bool)], tau,
                              title=f"1:1 verification ({source})")
fig
"""),
        code(r"""
target = 0.01                                    # at most 1 stranger in 100 let in
K = int((~own).sum(axis=1).min())                # the largest gallery we can measure
tau_1 = ev.threshold_for_gallery_size(D, 1, target, exclude=own)
tau_K = ev.threshold_for_gallery_size(D, K, target, exclude=own)
curves = {f"tau = {tau:.2f} (default)": ev.false_accept_vs_gallery_size(D, tau, exclude=own),
          f"tau = {tau_K:.3f} (FAR {target:g} at K = {K})": ev.false_accept_vs_gallery_size(D, tau_K, exclude=own)}
if abs(tau_1 - tau) > 0.01:
    curves[f"tau = {tau_1:.3f} (FAR {target:g} at K = 1)"] = ev.false_accept_vs_gallery_size(D, tau_1, exclude=own)
print(f"to let in at most {target:.0%} of strangers: tau = {tau_1:.3f} for one claim (1:1), "
      f"but tau = {tau_K:.3f} for a gallery of {K} people")
plots.plot_false_accept_vs_gallery_size(curves, target=target, log_y=True,
                                        title=f"1:K false accepts grow with K ({source})")
"""),
        md(r"""
The solid lines are measured, the dashed ones are $1-(1-p)^K$. The threshold that keeps one claim
at 1% false accepts lets in many more strangers against a large gallery; to keep the same rate for
1:K the threshold has to come down, which in turn rejects more genuine visitors (the ROC above
shows what it costs). That trade-off is why recognition systems calibrate $\tau$ for their gallery
size (`facenet-keras evaluate-identification`).
"""),
        code(r"""
gallery.close()
if SHARED is not None:
    big.close()
"""),
    ]


# =============================================================================================
# 02 triplet loss and one-shot learning
# =============================================================================================
def notebook_02():
    return [
        md(r"""
# 2. The triplet loss and one-shot learning

How is an encoder like notebook 1's trained? Not to *name* people (the people we will meet are not
in the training set) but to *place* them: photos of one person close together, of different people
far apart. The **triplet loss** says exactly that, for an anchor $A$, a positive $P$ (same
identity) and a negative $N$ (another identity):

$$\mathcal{L}(A, P, N) = \max\big(\lVert f(A) - f(P)\rVert^2 - \lVert f(A) - f(N)\rVert^2 + \alpha,\; 0\big).$$

The **margin** $\alpha$ matters: without it, $f \equiv 0$ (every input at one point) would have zero
loss. With it, the negative must be farther than the positive *by at least* $\alpha$.

To keep this notebook fast on a laptop CPU we train on scikit-learn's handwritten digits (each
digit class plays an "identity"), then do **one-shot classification** of digits the encoder never
saw in training: enrol *one* example each of 7, 8 and 9, recognise all the others.
"""),
        code(SETUP),
        md(r"""
## Easy, semi-hard and hard triplets

For an anchor and a positive at distance $d(A,P)$, a negative falls in one of three bands:

* **easy**: $d(A,N) > d(A,P) + \alpha$: loss 0, nothing to learn;
* **semi-hard**: $d(A,P) < d(A,N) < d(A,P) + \alpha$: correct order, but inside the margin;
* **hard**: $d(A,N) < d(A,P)$: the negative is closer than the positive.

Once training gets going, random triplets are mostly easy and training on them stalls. FaceNet
trains on *semi-hard* triplets mined inside each batch; the hardest ones alone tend to collapse the
model early on. (The package
uses squared distances, as the formula does.)
"""),
        code(r"""
from facenet_keras.training import losses

alpha = 0.2
anchor, positive = np.array([0.0, 0.0]), np.array([0.5, 0.0])      # d(A,P)^2 = 0.25
rng = np.random.default_rng(1)
negatives = rng.uniform(-1.1, 1.1, size=(60, 2))
d_ap = np.sum((anchor - positive) ** 2)
d_an = np.sum((negatives - anchor) ** 2, axis=1)
per_triplet = np.array([float(losses.triplet_loss(None, [anchor[None], positive[None], n[None]], alpha=alpha))
                        for n in negatives])
kind = np.where(d_an < d_ap, "hard", np.where(d_an < d_ap + alpha, "semi-hard", "easy"))

fig, ax = plt.subplots(figsize=(5.5, 5.5))
for r2, style in [(d_ap, "-"), (d_ap + alpha, "--")]:
    ax.add_patch(plt.Circle(anchor, np.sqrt(r2), fill=False, ls=style, color="0.4"))
colors = {"hard": "tab:red", "semi-hard": "tab:orange", "easy": "tab:green"}
for k, c in colors.items():
    m = kind == k
    ax.scatter(*negatives[m].T, c=c, s=20 + 300 * per_triplet[m], label=f"{k} negatives ({m.sum()})", alpha=0.8)
ax.plot(*anchor, "k*", ms=14, label="anchor A"); ax.plot(*positive, "bP", ms=11, label="positive P")
ax.set_aspect("equal"); ax.set_xlim(-1.15, 1.15); ax.set_ylim(-1.15, 1.15)
ax.set_title(f"circles: d(A,N)^2 = d(A,P)^2 and = d(A,P)^2 + alpha (alpha={alpha})\nmarker size ~ triplet loss", fontsize=9)
ax.legend(fontsize=8, loc="lower left")
plt.show()
print("loss per kind:", {k: round(float(per_triplet[kind == k].mean()), 3) for k in colors if (kind == k).any()})
"""),
        md(r"""
## The data: digits as identities

1,797 8x8 digits, upsampled to 16x16 RGB. Digits 0-6 are the training "identities"; **7, 8 and 9
are never shown to the encoder during training**.
"""),
        code(
            r"""
import keras

from facenet_keras.training.data import load_digits_images, pk_dataset
from facenet_keras.training.fit import embed, one_shot_accuracy, train_encoder, verification_accuracy

SIZE = 16
EPOCHS, STEPS = (2, 15) if FAST else (4, 15)    # training length: FAST for CI, the rest for you
images, labels = load_digits_images(SIZE)
train = labels < 7
unseen = ~train
print(f"{train.sum()} training images (digits 0-6), {unseen.sum()} images of unseen digits 7-9")

fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for digit, ax in enumerate(axes):
    ax.imshow(images[labels == digit][0].astype("uint8")); ax.set_title(str(digit)); ax.axis("off")
plt.show()
""",
            PRIVATE_TAG,
        ),  # scikit-learn's digits are CC BY 4.0, not public domain: no stored picture
        md(r"""
## A small encoder, before training

Seven training classes of 1,000 tiny images are very little to learn a *general* notion of "same
digit" from, and a big encoder learns the seven classes instead. The course's NN4.small2 (the
OpenFace FaceNet variant, in `facenet_keras.models.nn4_small2`, 257k parameters at a quarter width
on 32x32 digits) does exactly that here: after two epochs its triplet loss on digits 0-6 is near
zero, while its one-shot accuracy on the unseen digits swings between 0.50 and 0.74 from one epoch
to the next around its untrained 0.57, whatever we tried (learning rate 3e-3 or 1e-3, margin 0.2,
0.5 or 1.0, semi-hard or batch-all mining, with or without augmentation; 8 epochs of 25 steps,
one seed): the unseen digits' embeddings end up spanning only 3-6 directions, the training
classes' layout reused. So the encoder trained from scratch here is a tiny one, defined right below: two
convolutions and a 16-D unit-length output, 36k parameters. Untrained, its embeddings already
carry *some* information (random convolutions are not nothing), which is why we compare before and
after.
"""),
        code(r"""
L = keras.layers
keras.utils.set_random_seed(0)
encoder = keras.Sequential([
    keras.Input((SIZE, SIZE, 3)), L.Rescaling(1 / 255.0),
    L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
    L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
    L.Flatten(), L.Dense(16), L.UnitNormalization(),          # f(x) on the unit sphere, 16 numbers
], name="small_convnet")
print(f"{encoder.name}: {encoder.count_params():,} parameters, output {encoder.output_shape}")
before = embed(encoder, images)                 # (1797, 16), kept for the comparison
MARGIN = 0.5                                    # alpha for this training (squared distances on the sphere: 0..4)


def triplet_bands(emb, lab, n_anchors=200, seed=0, alpha=MARGIN):
    # Fractions of easy / semi-hard / hard among all (a, p, n) of some anchors, squared distances.
    r = np.random.default_rng(seed)
    idx = r.choice(len(lab), size=min(n_anchors, len(lab)), replace=False)
    e, l = emb[idx], lab[idx]
    d = np.sum((e[:, None] - e[None]) ** 2, axis=-1)
    pos = (l[:, None] == l[None]) & ~np.eye(len(l), dtype=bool)
    neg = l[:, None] != l[None]
    ap, an = d[:, :, None], d[:, None, :]
    valid = pos[:, :, None] & neg[:, None, :]
    hard = (an < ap) & valid
    semi = (an >= ap) & (an < ap + alpha) & valid
    n = valid.sum()
    return {"hard": hard.sum() / n, "semi-hard": semi.sum() / n, "easy": 1 - (hard.sum() + semi.sum()) / n}


bands_before = triplet_bands(before[unseen], labels[unseen])
print("triplets of unseen digits, untrained encoder:", {k: f"{v:.1%}" for k, v in bands_before.items()})
"""),
        md(r"""
## Train with semi-hard triplet mining

Each batch holds $P$ identities x $K$ examples (here 7 x 8); the loss looks at every valid
(anchor, positive) pair in the batch and picks its semi-hard negative, with margin
$\alpha = 0.5$ (the bands above and below use the same $\alpha$). `active_triplets` counts the
pairs still violating the margin: it falls as the encoder learns.
"""),
        code(r"""
dataset = pk_dataset(images[train], labels[train], P=7, K=8, augment=False, seed=0)
history = train_encoder(encoder, dataset, epochs=EPOCHS, steps_per_epoch=STEPS, mining="semi-hard",
                        margin=MARGIN, learning_rate=3e-3, verbose=0)
after = embed(encoder, images)

fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(history.history["loss"], "o-"); axes[0].set_title("semi-hard triplet loss"); axes[0].set_xlabel("epoch")
axes[1].plot(history.history["active_triplets"], "o-", color="tab:orange")
axes[1].set_title("active (anchor, positive) pairs per batch"); axes[1].set_xlabel("epoch")
plt.show()

bands_after = triplet_bands(after[unseen], labels[unseen])
print("triplets of unseen digits, trained encoder:  ", {k: f"{v:.1%}" for k, v in bands_after.items()})
for name, e in [("before", before), ("after", after)]:
    print(f"verification accuracy on unseen digits 7-9 {name} training: "
          f"{verification_accuracy(e[unseen], labels[unseen]):.3f}")
"""),
        md(r"""
## Embeddings before and after, in 2-D

The 16-D embeddings projected on their first two principal components (PCA), one colour per digit.
Digits 7, 8 and 9 (crosses) were never trained on. What one-shot learning needs is that they,
too, gather into clusters of their own: that the encoder learns a *general* notion of "same digit".
Whether this short training gets there is for the numbers to say: compare the triplet bands above
and the one-shot accuracy below, before and after. (FAST mode, the test suite's, trains for half
as many steps; `benchmarks/one_shot_digits.py` repeats the experiment over several seeds.)
"""),
        code(
            r"""
from sklearn.decomposition import PCA

show = np.random.default_rng(0).choice(len(labels), size=600 if FAST else 1797, replace=False)
fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
for ax, (title, emb) in zip(axes, [("untrained encoder", before), ("after triplet training", after)]):
    xy = PCA(n_components=2).fit_transform(emb[show])
    for digit in range(10):
        m = labels[show] == digit
        ax.scatter(*xy[m].T, s=14 if digit < 7 else 30, marker="o" if digit < 7 else "x",
                   color=plt.cm.tab10(digit), label=f"{digit}" + (" (unseen)" if digit >= 7 else ""))
    ax.set_title(f"PCA of the embeddings: {title}"); ax.set_xticks([]); ax.set_yticks([])
axes[1].legend(fontsize=8, ncol=2, loc="best")
plt.show()
""",
            "readme-figure",
        ),
        md(r"""
## One-shot classification of unseen classes

Enrol **one** example of each unseen digit (7, 8, 9) and label every other image of those digits by
its nearest enrolled example, exactly as `recognize` does with faces. Chance is 1/3. The result
depends on which examples were enrolled, so we average over many random draws.
"""),
        code(
            r"""
classes = np.array([7, 8, 9])
trials = 100 if FAST else 200          # draws are cheap: enough of them to see a gain of a few points
rng = np.random.default_rng(0)
draws = [np.array([rng.choice(np.flatnonzero(labels == c)) for c in classes]) for _ in range(trials)]


def one_shot(emb, support):
    query = np.setdiff1d(np.flatnonzero(unseen), support)
    return one_shot_accuracy(emb[support], labels[support], emb[query], labels[query])


acc = {name: np.array([one_shot(e, s) for s in draws]) for name, e in [("untrained", before), ("trained", after)]}
for name, a in acc.items():
    print(f"one-shot accuracy on digits 7-9, {name} encoder: {a.mean():.3f} (+/- {a.std():.3f} over {trials} draws)")
gain = acc["trained"].mean() - acc["untrained"].mean()
noise = np.hypot(acc["trained"].std(), acc["untrained"].std()) / np.sqrt(trials)
verdict = ("it helped" if gain > 2 * noise else "it hurt" if gain < -2 * noise else
           "no clear change over these draws")
print(f"training on digits 0-6 changed one-shot accuracy on the unseen digits by {gain:+.3f} "
      f"(+/- {noise:.3f} over the draws): {verdict}" + (f" (FAST mode: {EPOCHS * STEPS} steps)" if FAST else ""))

support = draws[0]
query = np.setdiff1d(np.flatnonzero(unseen), support)[::37][:12]
d = np.linalg.norm(after[query][:, None] - after[support][None], axis=-1)
pred = classes[np.argmin(d, axis=1)]
fig, axes = plt.subplots(2, 12, figsize=(12, 2.6))
for ax, i, c in zip(axes[0], support, classes):
    ax.imshow(images[i].astype("uint8")); ax.set_title(f"enrolled {c}", fontsize=8)
for ax, i, p in zip(axes[1], query, pred):
    ax.imshow(images[i].astype("uint8")); ax.set_title(f"-> {p}", fontsize=8, color="green" if p == labels[i] else "red")
for ax in axes.ravel():
    ax.axis("off")
plt.show()
""",
            PRIVATE_TAG,
        ),  # its accuracies are stored; its digit thumbnails (CC BY 4.0, not public domain) are not
        md(r"""
How much of this is luck? `python benchmarks/one_shot_digits.py --models small_convnet --seeds 0 1 2 3 4`
trains this encoder with these settings (4 epochs of 15 steps, margin 0.5) from five different
random starts: one-shot accuracy on the unseen digits went from 0.619 untrained to 0.749 trained
(mean of the five; every seed gained, by 0.04 to 0.21). The enrolled examples and some of the
queries are drawn by the cell above (stored without its picture: scikit-learn's digits are
CC BY 4.0, not public domain).

The same recipe with faces: train on many people (FaceNet used 200 million photos of 8 million
people), then enrol anyone from one photo. `facenet-keras train` fine-tunes an encoder on a folder of
identities with the same loss and mining (see `benchmarks/one_shot_digits.py` for this experiment at
full length).

## One-shot learning on faces

Now with a real face encoder, trained that way on millions of photos (the package's pretrained
dlib ResNet), and the course's functions: enrol **one** photo of each person into the course's
`database` dict with `img_to_encoding`, then ask `who_is_it` about every other photo. The people
are from `../shared/data/faces` (34 people with two or more photos: TV stills, press photos,
150x150 crops, some in grayscale); the encoder never saw these photos (some famous people among them
may well have been in its 3 million training photos, the other ones hardly). The people
with a single photo are never enrolled: they play strangers, for whom the right answer is
"not in the database". Only numbers are shown (the photos may not be redistributed).
"""),
        code(r"""
if SHARED is not None:
    from tqdm.auto import tqdm

    import facenet_keras as fk
    from facenet_keras.course import img_to_encoding, who_is_it
    from facenet_keras.images import list_identities

    people = list_identities(SHARED / "faces")
    multi = {name: photos for name, photos in people.items() if len(photos) >= 2}
    strangers = [photos[0] for name, photos in people.items() if len(photos) == 1]
    if FAST:   # four people with 150x150 crops, three photos each, and one stranger
        multi = {name: multi[name][:3] for name in ("dlib_john_salley", "dlib_john_savage", "dlib_john_simm",
                                                    "bbt_amy")}
        strangers = strangers[:1]
    database = {name: img_to_encoding(photos[0]) for name, photos in multi.items()}     # one photo each
    probes = [(photo, name) for name, photos in multi.items() for photo in photos[1:]]
    answers = [who_is_it(photo, database) for photo, _ in tqdm(probes + [(p, None) for p in strangers],
                                                               desc="who_is_it")]
    known, unknown = answers[:len(probes)], answers[len(probes):]
    truth = np.array([name for _, name in probes])
    named = np.array([identity or "(not recognised)" for _, identity in known])
    dist = np.array([d for d, _ in known])
    right = named == truth
    print(f"{len(database)} people enrolled from one photo each; {len(probes)} other photos identified")
    print(f"identification rate: {right.mean():.1%} ({right.sum()}/{len(probes)}); "
          f"not recognised: {(named == '(not recognised)').sum()}; a wrong name: {(~right & (named != '(not recognised)')).sum()}")
    print(f"strangers (never enrolled) answered 'not in the database': "
          f"{sum(identity is None for _, identity in unknown)}/{len(unknown)}")
else:
    print("../shared/data not found: skipping one-shot learning on faces")
"""),
        md(r"""
The **errors**, and whom they were confused with. A face missed as "not recognised" was farther
than the threshold from its own enrolled photo (a different age, pose, light, or a grayscale crop
against a colour photo); a wrong name is nearer to someone else's photo than to its own.
"""),
        code(r"""
if SHARED is not None:
    wrong = np.flatnonzero(~right)
    for i in wrong:
        photo, name = probes[i]
        print(f"  {name}/{Path(photo).name} -> {named[i]} (min_dist {dist[i]:.3f})")
    involved = sorted(set(truth[wrong]) | set(named[wrong])) or ["(no errors)"]
    confusion = np.zeros((len(involved), len(involved)), int)
    for i in wrong:
        confusion[involved.index(truth[i]), involved.index(named[i])] += 1
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
    axes[0].hist([dist[right], dist[~right]], bins=np.linspace(0, 1, 26), stacked=True,
                 color=["tab:green", "tab:red"], label=["identified", "error"])
    tau = fk.DEFAULT_THRESHOLD
    axes[0].axvline(tau, color="k", ls="--", label=f"threshold {tau}")
    axes[0].set_xlabel("min_dist: distance to the nearest enrolled photo"); axes[0].set_ylabel("photos")
    axes[0].legend(); axes[0].set_title("who_is_it on faces, one photo enrolled per person", fontsize=10)
    axes[1].imshow(confusion, cmap="Reds")
    axes[1].set_xticks(range(len(involved)), involved, rotation=60, ha="right", fontsize=8)
    axes[1].set_yticks(range(len(involved)), involved, fontsize=8)
    for (r, c), n in np.ndenumerate(confusion):
        if n:
            axes[1].text(c, r, n, ha="center", va="center")
    axes[1].set_xlabel("answered"); axes[1].set_ylabel("true person")
    axes[1].set_title("confusion of the errors only", fontsize=10)
    plt.tight_layout()
    plt.show()
"""),
        md(r"""
To look at the errors themselves, run the next cell on your machine: it shows each wrongly
answered photo beside the enrolled photo of the true person. (The stored notebook keeps this
cell's text output only: the development photos may not be redistributed.)
"""),
        code(
            r"""
if SHARED is not None and len(wrong):
    from facenet_keras.images import load_image

    shown = wrong[:6]
    fig, axes = plt.subplots(2, len(shown), figsize=(2.2 * len(shown), 4.6), squeeze=False)
    for k, i in enumerate(shown):
        photo, name = probes[i]
        axes[0, k].imshow(load_image(photo)); axes[0, k].set_title(f"-> {named[i]}", fontsize=8, color="red")
        axes[1, k].imshow(load_image(multi[name][0])); axes[1, k].set_title(f"enrolled: {name}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    plt.show()
print(f"{len(wrong) if SHARED is not None else 0} error(s) to look at")
""",
            "private-photos",
        ),
    ]


# =============================================================================================
# 03 siamese binary classification
# =============================================================================================
def notebook_03():
    return [
        md(r"""
# 3. Verification as binary classification (Siamese network)

Notebook 1 decided "same person?" with a distance and a threshold. DeepFace (Taigman et al., 2014)
instead *learns* the decision: feed the two encodings of a pair, through the same (frozen) encoder,
into a logistic regression unit

$$\hat y = \sigma\Big(\sum_{k=1}^{128} w_k \,\big|f(x_1)_k - f(x_2)_k\big| + b\Big)
\quad\text{or, with chi-square features,}\quad
\hat y = \sigma\Big(\sum_k w_k \,\frac{(f(x_1)_k - f(x_2)_k)^2}{f(x_1)_k + f(x_2)_k} + b\Big),$$

trained on pairs labelled 1 (same person) or 0 (different people). Both features are symmetric in
$(x_1, x_2)$, each dimension gets its own weight (the plain distance weighs them all alike), and the
output is a **probability**, which we can check for calibration.
"""),
        code(SETUP),
        md(r"""
## Pairs of encodings

Photos of people from LFW (in `../shared/data`), encoded once by the pretrained encoder of notebook 1
(the encodings are cached on disk, so a second run is instant). People are split in two halves:
the classifier is **trained on pairs of the first half and tested on people it never saw**.
Without the shared data the notebook falls back to digits (an illustration only: a 30-D PCA of the
pixels plays the encoder).
"""),
        code(r"""
from itertools import combinations

rng = np.random.default_rng(0)


def make_pairs(emb, who):
    # All same-identity pairs, and as many different-identity pairs drawn at random.
    same = [(i, j) for i, j in combinations(range(len(who)), 2) if who[i] == who[j]]
    diff = set()
    while len(diff) < len(same):
        i, j = sorted(rng.choice(len(who), 2, replace=False))
        if who[i] != who[j]:
            diff.add((i, j))
    idx = np.array(same + sorted(diff))
    return emb[idx[:, 0]], emb[idx[:, 1]], np.r_[np.ones(len(same)), np.zeros(len(diff))].astype(bool)


if SHARED is not None:
    from facenet_keras.evaluation.protocols import primary_embeddings

    root = SHARED / "lfw-dev" / "images"
    folders = {p.name: sorted(p.glob("*.jpg"))[:4] for p in sorted(root.iterdir()) if p.is_dir()}
    people = [n for n, photos in folders.items() if len(photos) >= 2][: 30 if FAST else None]
    paths = [p for n in people for p in folders[n]]
    embs, failed = primary_embeddings(paths)
    ok = [i for i, e in enumerate(embs) if e is not None]
    emb = np.stack([embs[i] for i in ok])
    who = np.array([p.parent.name for p in paths])[ok]
    source = f"LFW faces, {len(people)} people, {len(emb)} photos"
else:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    digits = load_digits()
    emb = PCA(30, random_state=0).fit_transform(digits.data).astype("float32")
    keep = rng.choice(len(emb), 300 if FAST else 900, replace=False)
    emb, who = emb[keep], digits.target[keep]
    source = "digits (ILLUSTRATION: ../shared/data not found; train/test split by image)"

identities = np.unique(who)
if SHARED is not None:   # train on half of the people, test on the others
    first_half = np.isin(who, identities[: len(identities) // 2])
else:                    # only 10 digit classes: split the images instead
    first_half = rng.random(len(who)) < 0.5
train = make_pairs(emb[first_half], who[first_half])
test = make_pairs(emb[~first_half], who[~first_half])
print(f"{source}: {len(train[2])} training pairs, {len(test[2])} test pairs"
      + (" of other people" if SHARED is not None else "") + " (half same, half different)")
"""),
        md(r"""
## The two features

Per dimension $k$, the median feature over same-person pairs and over different-people pairs. Some
dimensions separate the two classes better than others; a learned weight per dimension can use
that, a plain Euclidean distance cannot. (Chi-square was designed for DeepFace's non-negative ReLU
features; dlib's encodings are signed, so the package divides by $|f(x_1)_k + f(x_2)_k| + \epsilon$,
which can be tiny: the feature has heavy tails, hence medians.)
"""),
        code(r"""
from facenet_keras.training import siamese

fig, axes = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
for ax, kind in zip(axes, siamese.FEATURE_KINDS):
    f = np.asarray(siamese.pair_features(train[0], train[1], kind))
    ax.bar(np.arange(f.shape[1]), np.median(f[~train[2]], 0), color="tab:red", alpha=0.6, label="different people")
    ax.bar(np.arange(f.shape[1]), np.median(f[train[2]], 0), color="tab:green", alpha=0.8, label="same person")
    ax.set_ylabel(f"median {kind} feature"); ax.legend(fontsize=8, loc="upper right")
axes[-1].set_xlabel("embedding dimension k")
plt.show()
"""),
        md(r"""
## Logistic regression on pairs

`SiameseClassifier` standardises the features and fits one sigmoid unit with the log loss
(full-batch Adam, an L2 penalty on the weights). The baseline is notebook 1's rule: distance below
a threshold, the threshold chosen on the same training pairs.
"""),
        code(r"""
from facenet_keras import evaluation as ev

EPOCHS = 150 if FAST else 400
dim = train[0].shape[1]
classifiers = {kind: siamese.SiameseClassifier(dim=dim, kind=kind).fit(*train, epochs=EPOCHS) for kind in ("abs", "chi2")}

d_train = np.linalg.norm(train[0] - train[1], axis=1)
d_test = np.linalg.norm(test[0] - test[1], axis=1)
tau = ev.best_threshold(d_train, train[2])
prob = {kind: clf.predict_proba(test[0], test[1]) for kind, clf in classifiers.items()}
print(f"distance threshold tau = {tau:.3f} (chosen on the training pairs)")
print(f"test accuracy, distance <= tau : {ev.accuracy_at(d_test, test[2], tau):.3f}   AUC {ev.auc(d_test, test[2]):.4f}")
for kind, p in prob.items():
    acc = np.mean((p >= 0.5) == test[2])
    print(f"test accuracy, {kind:4s} P >= 0.5   : {acc:.3f}   AUC {ev.auc(1 - p, test[2]):.4f}")

fig, ax = plt.subplots(figsize=(5.5, 5))
for name, score in [("distance", d_test)] + [(f"logistic, {k}", 1 - p) for k, p in prob.items()]:
    far, tar, _ = ev.roc_curve(score, test[2])
    ax.step(far, tar, where="post", label=f"{name} (AUC {ev.auc(score, test[2]):.3f})")
ax.set_xlabel("false accept rate"); ax.set_ylabel("true accept rate"); ax.set_title(f"ROC on unseen people")
ax.set_xscale("symlog", linthresh=0.01); ax.set_xlim(0, 1); ax.grid(alpha=0.3); ax.legend(loc="lower right")
plt.show()
"""),
        md(r"""
## Calibrated probabilities

A probability is *calibrated* when, among all pairs given $P(\text{same}) \approx 0.8$, about 80%
really are the same person. The reliability diagram bins the test pairs by predicted probability
and plots the observed fraction of same-person pairs; the diagonal is perfect calibration. For
comparison, *Platt scaling* of the distance (a one-feature logistic regression on $d$) turns the
threshold rule into probabilities too. Brier score and expected calibration error (ECE): lower is
better.
"""),
        code(
            r"""
from sklearn.linear_model import LogisticRegression

platt = LogisticRegression(C=1e6).fit(d_train[:, None], train[2])      # (almost) unregularised
prob["distance (Platt)"] = platt.predict_proba(d_test[:, None])[:, 1]

bins = np.linspace(0, 1, 11)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
axes[0].plot([0, 1], [0, 1], "k:", label="perfect calibration")
for name, p in prob.items():
    idx = np.clip(np.digitize(p, bins) - 1, 0, 9)
    filled = [b for b in range(10) if (idx == b).any()]
    x, y = [p[idx == b].mean() for b in filled], [test[2][idx == b].mean() for b in filled]
    line, = axes[0].plot(x, y, "-", alpha=0.7,
                         label=f"{name}: Brier {siamese.brier_score(p, test[2]):.3f}, "
                               f"ECE {siamese.expected_calibration_error(p, test[2]):.3f}")
    axes[0].scatter(x, y, s=[8 + 200 * np.mean(idx == b) for b in filled], color=line.get_color())
    axes[1].hist(p, bins=bins, histtype="step", lw=2, label=name)
axes[0].set_xlabel("predicted P(same person)"); axes[0].set_ylabel("observed fraction of same-person pairs")
axes[0].set_title("reliability diagram (test pairs; marker area ~ pairs in the bin)", fontsize=10)
axes[0].legend(fontsize=8)
axes[1].set_yscale("log")
axes[1].set_xlabel("predicted P(same person)"); axes[1].set_ylabel("pairs (log)"); axes[1].set_title("how confident")
axes[1].legend(fontsize=8)
plt.show()
""",
            "readme-figure",
        ),
        md(r"""
## Use it on a new pair

With face encodings, the classifier answers a verification question with a probability. The two
bundled public-domain portraits: Grace Hopper against a changed copy of her photo, and against
astronaut Eileen Collins.
"""),
        code(r"""
if SHARED is not None:
    import facenet_keras as fk
    from facenet_keras.demo import changed_copy, sample_portraits

    portraits = sample_portraits()
    grace, eileen = portraits["Grace Hopper"], portraits["Eileen Collins"]
    (g,), (g2,), (e,) = fk.encode(grace), fk.encode(changed_copy(grace)), fk.encode(eileen)
    clf = classifiers["abs"]
    for text, (a, b) in [("Grace vs her changed copy", (g, g2)), ("Grace vs Eileen", (g, e))]:
        same, p = clf(a.embedding, b.embedding)
        print(f"{text:26s}: P(same) = {p:.3f} -> {'same person' if same else 'different people'}"
              f"   (distance {np.linalg.norm(a.embedding - b.embedding):.3f})")
else:
    print("(needs face encodings: skipped in the digits illustration)")
"""),
        md(r"""
What to take away: on a strong encoder the learned weights buy little accuracy over a well-chosen
distance threshold (the encoder was trained so that the plain distance works), but the classifier
gives *probabilities*, and with Platt scaling even the distance rule can. A threshold on a calibrated
probability is a threshold on the odds, which is what a risk policy is written in.
"""),
    ]


# =============================================================================================
# 04 neural style transfer
# =============================================================================================
def notebook_04():
    return [
        md(r"""
# 4. Neural style transfer

Gatys et al. (2015): paint a **content** image $C$ in the style of a **style** image $S$ by
optimising the *pixels* of a generated image $G$ so that

* its deep VGG activations match those of $C$ (content), and
* the correlations between its VGG channels (Gram matrices) match those of $S$ (style).

The network itself is never trained: VGG19, pretrained on ImageNet, is a fixed feature extractor.
This notebook walks through what VGG layers see, the three costs, the optimisation, and the
variants (colour preservation, multi-scale, the one-pass TF-Hub model).
"""),
        code(SETUP),
        code(r"""
import style_transfer as st
from skimage import data as skdata

SIZE = 96 if FAST else 192                       # longest side of the generated image, pixels
STEPS = 12 if FAST else 150                      # optimisation steps per run (a few minutes on a CPU)

# Public-domain pictures only: scikit-image's cat, and Van Gogh's painting from ../shared/data when present.
content, content_name = st.load_image(skdata.chelsea()), "Chelsea the cat"
if SHARED is not None:
    style, style_name = st.load_image(SHARED / "style" / "style" / "starry_night.jpg"), "Van Gogh, The Starry Night"
else:
    style, style_name = st.load_image(skdata.hubble_deep_field()), "Hubble deep field"

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, img, title in zip(axes, (content, style), (f"content: {content_name}", f"style: {style_name}")):
    ax.imshow(img); ax.set_title(title); ax.axis("off")
plt.show()
"""),
        md(r"""
## What VGG layers see

VGG19 is 16 convolutional layers in five blocks. Following Zeiler & Fergus, for a few *units*
(channels) of a layer we find the image patches that activate each unit most: shallow units
respond to colours and edges, deeper ones to textures and object parts. Each patch is the unit's
receptive field (bigger in deeper layers).
"""),
        code(r"""
from style_transfer import visualize

extractor_vis = st.build_feature_extractor(["block1_conv2", "block3_conv1", "block5_conv1"])
patch_sources = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket(), content, style]
if not FAST:
    patch_sources += [skdata.hubble_deep_field(), skdata.retina(), skdata.immunohistochemistry(),
                      np.repeat(skdata.camera()[..., None], 3, -1)]
for layer, units in [("block1_conv2", [3, 10, 25]), ("block3_conv1", [5, 40, 90]), ("block5_conv1", [7, 60, 200])]:
    found = visualize.top_activating_patches(patch_sources, layer, units, k=4 if FAST else 9,
                                             size=160 if FAST else 224, extractor=extractor_vis)
    visualize.plot_top_patches(found, layer, cols=2 if FAST else 3)
    plt.show()
"""),
        code(r"""
maps = visualize.feature_maps(content, "block3_conv1", size=160 if FAST else 224, extractor=extractor_vis)
visualize.plot_feature_maps(maps, n=16, title=f"block3_conv1 activations of the content image {maps.shape}")
plt.show()
"""),
        md(r"""
## Content cost

Pick one layer $l$ (here `block4_conv2`) with activations $a^{[l]} \in \mathbb{R}^{n_H \times n_W
\times n_C}$. The content cost is the (normalised) squared difference of activations:

$$J_{content}(C, G) = \frac{1}{4\, n_H n_W n_C} \sum (a^{(C)} - a^{(G)})^2 .$$

A deep layer keeps *what* is where (objects, layout) but not exact pixels.
"""),
        code(r"""
from style_transfer import costs

layers = [costs.CONTENT_LAYER] + [name for name, _ in costs.STYLE_LAYERS]
extractor = st.build_feature_extractor(layers)   # one VGG19 that stops at the deepest layer needed
print("weights:", extractor.weights_source.describe())

small = lambda img: st.images.resize_longest(img, SIZE)
C, S = small(content), small(style)
noisy = np.clip(C + np.random.default_rng(0).uniform(-0.25, 0.25, C.shape), 0, 1).astype("float32")
S_as_C = st.images.resize(style, *C.shape[:2])    # the content cost compares same-size maps
feats = {name: extractor(x[None], training=False)
         for name, x in [("C", C), ("S", S), ("noisy C", noisy), ("S at C's size", S_as_C)]}
for other in ("noisy C", "S at C's size"):
    J = costs.compute_content_cost(feats["C"][costs.CONTENT_LAYER], feats[other][costs.CONTENT_LAYER])
    print(f"J_content(C, {other:14s}) = {float(J):10.2f}")
"""),
        md(r"""
## Gram matrix and style cost

Unroll a layer's activation to $A \in \mathbb{R}^{n_C \times n_H n_W}$; the **Gram matrix**
$G = A A^T$ holds, for every pair of channels, how much they fire *together*, wherever in the image.
Position is averaged away: what remains is texture, colour, brush strokes. The layer style cost and
the style cost over several layers with weights $\lambda_l$:

$$J^{[l]}_{style}(S, G) = \frac{1}{4 n_C^2 (n_H n_W)^2} \sum_{i,j} (G^{(S)}_{ij} - G^{(G)}_{ij})^2,
\qquad J_{style} = \sum_l \lambda_l J^{[l]}_{style}.$$
"""),
        code(r"""
layer = "block2_conv1"
unrolled = lambda a: np.asarray(a[0]).reshape(-1, a.shape[-1]).T          # (n_C, n_H*n_W)
grams = {k: np.asarray(costs.gram_matrix(unrolled(feats[k][layer]))) for k in ("C", "S")}

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (k, g) in zip(axes, grams.items()):
    n_hw = feats[k][layer].shape[1] * feats[k][layer].shape[2]       # normalise by n_H n_W
    ax.imshow(np.sqrt(g[:48, :48] / n_hw), cmap="magma")                 # first 48 channels
    ax.set_title(f"{k}: Gram matrix at {layer}\n(first 48 of {g.shape[0]} channels, sqrt)", fontsize=10)
    ax.axis("off")
plt.show()

per_layer = {name: float(costs.compute_layer_style_cost(feats["S"][name], feats["C"][name]))
             for name, _ in costs.STYLE_LAYERS}
for (name, weight), J_l in zip(costs.STYLE_LAYERS, per_layer.values()):
    print(f"compute_layer_style_cost(S, C) at {name}: {J_l:10.4g}   x lambda = {weight}")
J_style = costs.compute_style_cost(feats["S"], feats["C"])
print(f"compute_style_cost(S, C) = sum of lambda x layer cost = {float(J_style):.4g} "
      f"(check: {sum(w * per_layer[n] for n, w in costs.STYLE_LAYERS):.4g}); "
      f"J_style(S, S) = {float(costs.compute_style_cost(feats['S'], feats['S'])):.4g}")
"""),
        md(r"""
## The weights $\alpha$ and $\beta$

$J(G) = \alpha J_{content} + \beta J_{style}$ is `total_cost(J_content, J_style, alpha=10, beta=40)`,
with the course's weights as its defaults. What matters is not the numbers but the **balance**:
how large $\beta J_{style}$ is next to $\alpha J_{content}$ while the image is being painted. That
depends on the scale of the activations, which depends on how pixels enter VGG: the course feeds
its own VGG pixels in one range, this package feeds Keras's VGG19 0-255 pixels minus the ImageNet
mean, which makes activations far larger, and the Gram matrices (products of activations) larger
again by that factor squared. So `st.stylize` uses its own default weights, chosen (see the README)
so that the two terms pull about as hard as the course's do in the course's setting. The cell
below reads the actual defaults from the code and compares the two balances on the starting image.
"""),
        code(r"""
from style_transfer.optimize import StyleOptions

# The package normalises each style layer's cost by the style image's own Gram magnitude by default
# (one weight then fits every painting); on the course's unnormalised costs, used here, its weights are:
names = ("content_weight", "style_weight", "tv_weight")
defaults = dict(zip(names, StyleOptions(normalize=False).weights()))
print("stylize's default weights, course-scale costs (normalize=False):", defaults)
print("and with its normalised costs (the default):", dict(zip(names, StyleOptions().weights())))
J_c = costs.compute_content_cost(feats["C"][costs.CONTENT_LAYER], feats["noisy C"][costs.CONTENT_LAYER])
J_s = costs.compute_style_cost(feats["S"], feats["noisy C"])
for label, alpha, beta in [("course", 10, 40), ("package", defaults["content_weight"], defaults["style_weight"])]:
    J = costs.total_cost(J_c, J_s, alpha=alpha, beta=beta)
    print(f"{label:8s} alpha={alpha:<8g} beta={beta:<8g}: total_cost = {float(J):.4g}; "
          f"style term / content term = {beta * float(J_s) / (alpha * float(J_c)):.3g}")
print("a ratio above 1: the style term pulls harder on this starting image (the content plus noise);"
      " below 1: the content term does")
"""),
        md(r"""
## Total cost and optimising the pixels

$$J(G) = \alpha J_{content}(C, G) + \beta J_{style}(S, G) \;(+\; \gamma J_{TV}(G)),$$

where the optional total-variation term keeps neighbouring pixels alike (less noise). Start from
the content image plus noise and follow the gradient of $J$ with respect to the *pixels* of $G$
(Adam). `st.stylize` does exactly this; its `callback` lets us keep intermediate images.
"""),
        code(r"""
snapshots = {}
every = max(1, STEPS // 4)
def keep(step, image, cost):
    if step == 1 or step % every == 0:
        snapshots[step] = image.copy()

result = st.stylize(C, S, size=SIZE, steps=STEPS, schedule="single", extractor=extractor,
                    callback=keep, progress=False)
print(f"{STEPS} steps at {SIZE}px in {result.seconds:.1f} s; final costs: "
      + ", ".join(f"{k} {v:.4g}" for k, v in result.costs.items()))

fig, axes = plt.subplots(1, len(snapshots), figsize=(3 * len(snapshots), 3.2))
for ax, (step, img) in zip(np.atleast_1d(axes), sorted(snapshots.items())):
    ax.imshow(img); ax.set_title(f"step {step}"); ax.axis("off")
fig.suptitle("intermediate images")
plt.show()

hist = result.history
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy([h["step"] for h in hist], [h["total"] for h in hist], label="total J (weighted)")
ax.set_xlabel("step"); ax.set_ylabel("cost"); ax.legend()
plt.show()
"""),
        md(r"""
## Colour preservation

A plain transfer repaints the content with the style's palette. Gatys et al. (2016) transfer only
the *luminance*: optimise on grey images, then put the content's own colours back (YIQ colour
space). The town keeps its colours, the strokes come from the painting.
"""),
        code(r"""
kept = st.stylize(C, S, size=SIZE, steps=STEPS, schedule="single", extractor=extractor,
                  preserve_colors=True, progress=False)
"""),
        md(r"""
## Multi-scale (coarse to fine)

Optimising at full size is slow and the strokes end up small. The default schedule spends most
steps at a quarter and a half of the size (each step 16x and 4x cheaper) and finishes with a few
steps at full size: large-scale structure first, detail last.
"""),
        code(r"""
print("schedule (longest side, steps):", st.multiscale_schedule(SIZE * 2, STEPS * 2, min_size=32))
multi = st.stylize(C, S, size=SIZE * 2, steps=STEPS * 2, schedule=st.multiscale_schedule(SIZE * 2, STEPS * 2, min_size=32),
                   extractor=extractor, progress=False)
print(f"multi-scale to {SIZE * 2}px in {multi.seconds:.1f} s")
"""),
        code(
            r"""
panels = [(C, f"content: {content_name}"), (S, f"style: {style_name}"), (result.image, "style transfer"),
          (kept.image, "colours preserved"), (multi.image, "multi-scale, 2x size")]
fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4))
for ax, (img, title) in zip(axes, panels):
    ax.imshow(np.clip(img, 0, 1)); ax.set_title(title, fontsize=10); ax.axis("off")
plt.tight_layout()
plt.show()
""",
            "readme-figure",
        ),
        md(r"""
## The fast path: one forward pass (TF-Hub)

Optimising pixels takes minutes per image. Magenta's *arbitrary image stylization* network was
trained to predict the result in **one** forward pass for any style. The package never downloads
at run time: download and unpack the model once
(`https://tfhub.dev/google/magenta/arbitrary-image-stylization-v1-256/2`) and point
`STYLE_TRANSFER_HUB_MODEL` at its folder; without it the cell below just says so.
"""),
        code(r"""
hub_model = os.environ.get("STYLE_TRANSFER_HUB_MODEL")
if hub_model and Path(hub_model).is_dir():
    fast = st.fast_stylize(content, style, hub_model, size=SIZE * 2)
    plt.imshow(fast); plt.axis("off"); plt.title("TF-Hub arbitrary stylisation, one pass"); plt.show()
else:
    print("STYLE_TRANSFER_HUB_MODEL is not set to a SavedModel folder: skipping the TF-Hub model.")
"""),
    ]


# =============================================================================================
# 05 the door camera
# =============================================================================================
def notebook_05():
    return [
        md(r"""
# 5. The door camera

The course's scenario: a camera at a door lets in the people of the household and nobody else.
Notebook 1 answered *who is this?* for one photo. A door camera sees a **video**, and it has to
answer a second question the lecture names: *is this a live person, or someone holding up a photo
of a person we know?*

1. **enrol** the household, one photo each (one-shot, the course's `database`);
2. **watch** the camera: faces detected, **tracked** from frame to frame, and recognised per
   track (a vote over a track's best frames), not per frame;
3. check **liveness** on the frames of a recognised track: a flat photo moves like a plane, a
   head does not;
4. **open the door** only for a face that is both recognised and live, and show a held-up photo
   being refused although its face matches.

The video is a real 10 s clip (`../shared/data/video/short_hamilton_clip.mp4`, from
face_recognition's examples): a stage performance of *Hamilton*, with the pianist in close-up for
half a second, Lin-Manuel Miranda singing, and the audience at the end. It may not be
redistributed, so this notebook stores only numbers and plots of numbers; the cells that draw frames
are tagged `private-photos` and show their pictures only when you run them. Without the shared data
the notebook says so and stops early.
"""),
        code(SETUP),
        md(r"""
## The household, enrolled from one photo each

Two portraits come with the clip. `lin-manuel-miranda.png` is the singer. `alex-lacamoire.png` is
filed by the data's README as "a stranger to the clip", but it shows Alex Lacamoire, the show's
music director, who **is** in the clip: he is the pianist in the close-up at 0.7-1.2 s. So the
household here is the two of them, and the audience plays the strangers. The course's
`database` (a dict name -> encoding) answers single photos; `watch` wants a `FaceGallery`, so the
same two encodings go into an in-memory gallery too.
"""),
        code(r"""
import time

import facenet_keras as fk
from facenet_keras.course import img_to_encoding, verify, who_is_it
from facenet_keras.identity.gallery import FaceGallery

assert SHARED is not None, "this notebook needs ../shared/data (the clip and the portraits)"
VIDEO = SHARED / "video"
CLIP = VIDEO / "short_hamilton_clip.mp4"
portraits = {"lin": VIDEO / "lin-manuel-miranda.png", "alex": VIDEO / "alex-lacamoire.png"}

database = {name: img_to_encoding(path) for name, path in portraits.items()}      # the course's dict
household = FaceGallery(":memory:")                                                 # the same, for watch
for name, path in portraits.items():
    household.enroll(name, path)
tau = fk.DEFAULT_THRESHOLD
d_between = float(np.linalg.norm(database["lin"] - database["alex"]))
print(f"household: {household.names()}; distance between the two portraits {d_between:.3f} "
      f"(threshold {tau}: two different people)")
"""),
        code(
            r"""
fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
for ax, (name, path) in zip(axes, portraits.items()):
    ax.imshow(fk.load_image(path)); ax.set_title(f"enrolled: {name}"); ax.axis("off")
plt.show()
""",
            PRIVATE_TAG,
        ),
        md(r"""
## Watching the camera

`fk.watch(source, gallery)` reads the video lazily (a file, a camera such as `/dev/video0`, or a
stream URL) and yields one result per frame: every tracked face with its track id, box and answer.
Detection runs on every 5th frame (the *key frames*) and boxes are interpolated in between; faces
are linked across frames by box overlap and embedding distance; each track is encoded on its best
few frames (large, frontal, sharp) and its identity is a vote, "not recognised" when the nearest
enrolled person is farther than the threshold. Events say when a track appeared, was identified
(or changed its answer) and left. (FAST mode, for the test suite, watches the first 7.2 s, to the end of the song.)
"""),
        code(r"""
WATCH_SECONDS = 7.2 if FAST else None      # FAST: up to the end of his song
STEP = 2 if FAST else 1                      # FAST: liveness on every 2nd frame (15 frames/s)
t0 = time.perf_counter()
events, key_frames, n_frames = [], [], 0
for result in fk.watch(CLIP, household, max_seconds=WATCH_SECONDS):
    n_frames += 1
    events += result.events
    if result.key:          # keep the key frames' pictures and faces for the plots below
        key_frames.append(result)
seconds = time.perf_counter() - t0
duration = n_frames / 29.97
print(f"watched {n_frames} frames ({duration:.1f} s of video) in {seconds:.1f} s: "
      f"{n_frames / seconds:.0f} frames/s on this machine, {len(key_frames)} key frames")

tracks = {}
for e in events:
    t = tracks.setdefault(e.track, {"identified": []})
    if e.kind == "appeared":
        t["appeared"] = e.time
    elif e.kind == "identified":
        t["identified"].append((e.time, e.identity))
    else:
        t.update(left=e.time, identity=e.identity, status=e.status)
print(f"\n{'track':>5} {'from':>6} {'to':>6}  answer")
for tid, t in tracks.items():
    first = t["identified"][0][0] if t["identified"] else None
    print(f"{tid:>5} {t['appeared']:6.2f} {t['left']:6.2f}  {t['identity'] or t['status']}"
          + (f" (decided at {first:.2f} s)" if first is not None else ""))
"""),
        md(r"""
The key frames as the camera saw them, with each tracked face's id and answer (run it yourself:
the stored notebook keeps no frame of the clip).
"""),
        code(
            r"""
from matplotlib.patches import Rectangle

shown = [key_frames[i] for i in np.linspace(0, len(key_frames) - 1, 6).astype(int)]
fig, axes = plt.subplots(2, 3, figsize=(13, 5))
for ax, r in zip(axes.ravel(), shown):
    ax.imshow(r.image); ax.set_title(f"frame {r.index}, {r.time:.2f} s", fontsize=9); ax.axis("off")
    for f in r.faces:
        x, y, w, h = f.box
        colour = "lime" if f.identity else "orange"
        ax.add_patch(Rectangle((x, y), w, h, fill=False, color=colour, lw=1.5))
        ax.text(x, y - 4, f.label, color=colour, fontsize=8)
plt.tight_layout()
plt.show()
""",
            PRIVATE_TAG,
        ),
        md(r"""
## Distance over time, per track

What the vote sees: each key frame's faces encoded and compared with both enrolled people (the
course's $d = \lVert f(\text{face}) - f(\text{enrolled})\rVert$), coloured by the track `watch`
put the face in. A track is one person: its distances stay on one side of the threshold, which is
why a vote over a track's frames is steadier than any single frame.
"""),
        code(r"""
from facenet_keras.faces.pipeline import encode_batch
from facenet_keras.live.tracking import iou_matrix

sampled = key_frames[::3] if FAST else key_frames
found = encode_batch([r.image for r in sampled], progress=False)
enrolled, names = household.embeddings()
rows = []          # (time, track or None, distance to each enrolled person)
for r, faces in zip(sampled, found):
    boxes = np.array([f.box for f in r.faces], np.float64).reshape(-1, 4)
    for face in faces:
        if face.gated:     # the quality gate turned it away: no embedding, never compared with anyone
            continue
        iou = iou_matrix(np.asarray(face.box, np.float64)[None], boxes)[0] if len(boxes) else np.zeros(0)
        track = r.faces[int(np.argmax(iou))].track if iou.size and iou.max() >= 0.3 else None
        rows.append((r.time, track, np.linalg.norm(enrolled - face.embedding, axis=1)))

fig, axes = plt.subplots(1, len(names), figsize=(13, 3.8), sharey=True)
cmap = plt.cm.tab20          # one colour per track
for ax, (k, name) in zip(axes, enumerate(names)):
    for tid in sorted(tracks):
        pts = np.array([(t, d[k]) for t, tr, d in rows if tr == tid]).reshape(-1, 2)
        if len(pts):
            ax.plot(*pts.T, "o-", ms=3, color=cmap(tid % 20), label=f"track {tid}")
    ax.axhline(tau, color="k", ls="--", lw=1, label=f"threshold {tau}")
    ax.set_title(f"distance to the enrolled {name}"); ax.set_xlabel("time in the clip (s)")
axes[0].set_ylabel("distance"); axes[-1].legend(fontsize=7, ncol=2, loc="lower right")
plt.tight_layout()
plt.show()
for tid in sorted(tracks):
    d = np.array([d for _, tr, d in rows if tr == tid]).reshape(-1, len(names))
    if len(d):
        print(f"track {tid}: median distance " + ", ".join(f"to {n} {m:.3f}" for n, m in zip(names, np.median(d, 0)))
              + f" over {len(d)} key frames")
"""),
        md(r"""
Reading it: Lin-Manuel Miranda's tracks (the small face at the top right of the first shot, then
his song) sit below the threshold for him and above it for Alex. The pianist's close-up (the
track that starts at 0.67 s) lies just under the threshold for Alex (about 0.57-0.59 at full
settings): weak evidence, and `watch` never votes on it: the face is turned away (its frontality,
from the five landmarks, is 0 on every key frame, so no frame is worth a vote) and it stays
*pending*: no name is better than a guess. The other small face of the first shot (track 1, about 24 px wide) is nearer to Alex than
to him, but at that size nothing is sure and `watch` answers "not recognised". The audience is
farther than the threshold from both: strangers; `watch` answers "not recognised" for the tracks it
votes on and leaves the others (faces too turned or small to be worth a vote) pending.

## Liveness: is it a live face?

A recognised face is not enough: a photo of Lin-Manuel Miranda held up to the camera is
recognised too. `check_liveness(frames)` looks at a short clip of one face, with dlib's 68
landmarks on every frame:

* **parallax**: the landmarks of a flat photo, however it is tilted or turned, move from one frame
  to another by one *planar homography*; those of a turning, talking head do not. The cue is how
  far the best homography misses (in inter-ocular distances; 90th percentile over frame pairs);
  at or above 0.1 the face is 3-D;
* **blinks**: the eye aspect ratio dips and comes back; a photo does not blink.

First the real thing: the frames of Lin-Manuel Miranda's longest track (his song).
"""),
        code(r"""
from facenet_keras.live import Challenge, check_liveness
from facenet_keras.live.frames import VideoWriter, read_frames
from facenet_keras.live.liveness import PARALLAX_THRESHOLD, measure_face, parallax_residuals

named = {tid: t for tid, t in tracks.items() if t["identity"] in database}
song_id = max(named, key=lambda tid: named[tid]["left"] - named[tid]["appeared"])
song = named[song_id]
start = song["appeared"] + 0.05
frames, times, fps = read_frames(CLIP, start=start, max_seconds=song["left"] - start, step=STEP)
live = check_liveness(frames, times=times)
print(f"track {song_id} ({song['identity']}), {times[0]:.2f}-{times[-1]:.2f} s, {len(frames)} frames:")
print(f"  live = {live.live}, score {live.score:.2f}")
for reason in live.reasons:
    print("  -", reason)
"""),
        md(r"""
## A spoof: his photo, held up to the camera

The attack the lecture names. The helper below makes the clip an attacker would show: the enrolled
portrait as a print about 16 cm wide, held 45 cm from the camera by a hand that tilts and turns it
(up to about 20 degrees), seen in perspective over a plain wall. The print is the very photo that was enrolled: the
attacker's best case for the face match. (The test suite's generator,
`tests/live_spoofs.py`, adds bent prints, blur and JPEG noise; the idea is the same.) Its face is
Lin-Manuel Miranda's own, so it matches; only liveness can tell.
"""),
        code(r"""
from PIL import Image

from facenet_keras.live.liveness import homography


def held_up_photo(photo, seconds=2.0, fps=30.0, seed=0, size=(640, 360), width_m=0.16, distance_m=0.45):
    # A flat print of `photo` (H, W, 3) uint8 held up to a pinhole camera (focal 600 px) and moved by
    # hand: frames (T, h, w, 3) uint8 and their times (T,) s.
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * fps)) / fps
    yaw, pitch, roll = (a * np.sin(2 * np.pi * f * t + p) for a, f, p in
                        zip((0.35, 0.2, 0.06), rng.uniform(0.3, 0.8, 3), rng.uniform(0, 2 * np.pi, 3)))
    ph, pw = photo.shape[:2]
    half = np.array([width_m, width_m * ph / pw]) / 2
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half                     # metres, on the print
    texture = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float64)                # pixels, in the photo
    print_rgba = Image.fromarray(np.dstack([photo, np.full((ph, pw), 255, np.uint8)]))
    wall = Image.new("RGBA", size, tuple(int(c) for c in rng.integers(90, 200, 3)) + (255,))
    frames = []
    for i in range(len(t)):
        cy, sy, cp, sp, cr, sr = np.cos(yaw[i]), np.sin(yaw[i]), np.cos(pitch[i]), np.sin(pitch[i]), np.cos(roll[i]), np.sin(roll[i])
        rot = (np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
               @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]))
        xyz = np.c_[corners, np.zeros(4)] @ rot.T + [0.01 * np.sin(3 * t[i]), 0.0, distance_m]
        seen = 600 * xyz[:, :2] / xyz[:, 2:] + np.array(size) / 2                      # where the corners land
        coeffs = homography(seen, texture).ravel()[:8]                                  # frame pixel -> photo pixel
        warped = print_rgba.transform(size, Image.PERSPECTIVE, tuple(coeffs), Image.BILINEAR)
        frames.append(np.asarray(Image.alpha_composite(wall, warped).convert("RGB")))
    return np.stack(frames), t


portrait = fk.load_image(portraits["lin"])
(face,) = fk.detect_faces(portrait)[:1]
x, y, w, h = face.box
cx, cy, s = x + w / 2, y + h / 2, 1.6 * max(w, h)                                      # a head-and-shoulders print
crop = portrait[int(max(0, cy - s)):int(cy + 1.2 * s), int(max(0, cx - s)):int(cx + s)]
spoof_frames, spoof_times = held_up_photo(crop, seconds=1.6 if FAST else 2.0, seed=0)
spoof = check_liveness(spoof_frames, times=spoof_times)
print(f"held-up photo, {len(spoof_frames)} frames: live = {spoof.live}, score {spoof.score:.2f}")
for reason in spoof.reasons:
    print("  -", reason)
"""),
        code(
            r"""
fig, axes = plt.subplots(1, 4, figsize=(13, 2.2))
for ax, i in zip(axes, np.linspace(0, len(spoof_frames) - 1, 4).astype(int)):
    ax.imshow(spoof_frames[i]); ax.set_title(f"held-up photo, {spoof_times[i]:.2f} s", fontsize=9); ax.axis("off")
plt.show()
""",
            PRIVATE_TAG,
        ),
        md(r"""
The numbers behind the two verdicts: the homography's miss for every pair of frames 0.2-1.5 s
apart, the head's yaw over time, and more held-up photos (other hands, other seeds) scored the
same way. A flat print, however it moves, stays far below the line; the turning head stays above it.
"""),
        code(r"""
m_live = measure_face(frames, times)
m_spoof = measure_face(spoof_frames, spoof_times)
more_seeds = [] if FAST else range(1, 6)     # other hands, other prints
attack_scores = [spoof.cues.get("parallax", 0.0)]
for seed in more_seeds:
    f, t = held_up_photo(crop, seconds=1.6 if FAST else 2.0, seed=seed)
    attack_scores.append(check_liveness(f, times=t).cues.get("parallax", 0.0))

fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
bins = np.linspace(0, 0.45, 31)
axes[0].hist(parallax_residuals(m_live.points, m_live.times), bins=bins, alpha=0.7, label="live: his song")
axes[0].hist(parallax_residuals(m_spoof.points, m_spoof.times), bins=bins, alpha=0.7, label="held-up photo")
axes[0].axvline(PARALLAX_THRESHOLD, color="k", ls="--", label=f"threshold {PARALLAX_THRESHOLD}")
axes[0].set_xlabel("homography miss (inter-ocular distances)"); axes[0].set_ylabel("frame pairs")
axes[0].legend(fontsize=8); axes[0].set_title("parallax: one plane or not?", fontsize=10)
axes[1].plot(m_live.times, m_live.yaw, label="live: his song")
axes[1].plot(m_spoof.times + m_live.times[0], m_spoof.yaw, label="held-up photo (same start)")
axes[1].set_xlabel("time in the clip (s)"); axes[1].set_ylabel("head yaw (degrees)")
axes[1].legend(fontsize=8); axes[1].set_title("head yaw fitted to the 68 landmarks", fontsize=10)
labels = ["his song"] + [f"photo, seed {s}" for s in [0, *more_seeds]]
values = [live.cues["parallax"], *attack_scores]
axes[2].barh(labels, values, color=["tab:green"] + ["tab:red"] * len(attack_scores))
axes[2].axvline(PARALLAX_THRESHOLD, color="k", ls="--")
axes[2].set_xlabel("parallax score (90th percentile)"); axes[2].set_title("liveness: the parallax cue", fontsize=10)
plt.tight_layout()
plt.show()
print(f"live: parallax {live.cues['parallax']:.3f}; held-up photos: "
      + ", ".join(f"{v:.3f}" for v in attack_scores) + f" (threshold {PARALLAX_THRESHOLD})")
"""),
        md(r"""
## The door

The door's rule, in the course's words: `door_open` only when the face is the claimed member of the
household **and** live. `fk.live.verify.verify_clip(clip, identity, gallery)` is that rule for a
short clip: liveness on its frames, and the median distance over a few of them; `match` is True
only when both pass. The camera saves a short clip of each track it recognised (here: written to a
temporary mp4) and asks `verify_clip` about it; the held-up photo is asked the same way. For
comparison, the course's `verify(image, identity, database)` on a single frame looks at distance
alone: it would open the door for the photo.
"""),
        code(r"""
import tempfile

from facenet_keras.live.verify import verify_clip

clips = Path(tempfile.mkdtemp(prefix="door-"))


def save_clip(frames, name, fps=29.97 / STEP):
    path = clips / f"{name}.mp4"
    with VideoWriter(path, fps, (frames.shape[2], frames.shape[1])) as out:
        for frame in frames:
            out.write(frame)
    return path


door = []      # (what, claimed identity, single-frame verify, verify_clip)
for tid, t in named.items():
    s = t["appeared"] + 0.05
    f, ts, _ = read_frames(CLIP, start=s, max_seconds=max(t["left"] - s, 0.1), step=STEP)
    try:
        course = verify(f[len(f) // 2], t["identity"], database)
    except fk.NoFaceError:              # the middle frame's face too small for the detector
        course = (float("nan"), False)
    try:
        v = verify_clip(save_clip(f, f"track{tid}"), t["identity"], household)
    except fk.NoFaceError as e:         # no face the liveness check could follow: nothing to open for
        v = str(e)
    door.append((f"track {tid}, {t['appeared']:.1f}-{t['left']:.1f} s", t["identity"], course, v))
course = verify(spoof_frames[len(spoof_frames) // 2], "lin", database)
door.append(("held-up photo of lin", "lin", course, verify_clip(save_clip(spoof_frames, "spoof"), "lin", household)))

for what, who, (dist, door_open), v in door:
    print(f"{what}: claims {who}")
    print(f"   course's verify on one frame: dist {dist:.3f} -> door_open={door_open}")
    if isinstance(v, str):
        print(f"   verify_clip: {v} -> door stays shut")
        continue
    why = "" if v.match else (v.liveness.reasons[0] if not v.liveness.live else "not close enough")
    print(f"   verify_clip: distance {v.distance:.3f} (match={v.distance_match}), live={v.liveness.live}"
          f" (score {v.liveness.score:.2f}) -> {'DOOR OPENS' if v.match else 'door stays shut: ' + why}")
"""),
        md(r"""
A glimpse is not enough either: the first shot's small face of Lin-Manuel Miranda is recognised,
but it is seen for half a second, too short for liveness (1.5 s of one face at least), so the door
stays shut until he has been in view long enough.

## A replayed video, and the active challenge

The passive cues cannot stop a **recording** of the real person played on a phone: it shows a real
head turning. That is what the active challenge is for: the door draws a random sequence of prompts
(turn left, turn right, blink) *after* the camera opens, each to be done inside its time window. A
recording made earlier follows them only by luck. The clip itself plays the recording here: against
prompts that happen to match what he did (turn right at 3.2-4.4 s, left at 4.6-5.6 s, right at
5.8-7.0 s) it passes; against random prompts it fails, except when the draw happens to match what
the recording shows (the count below).
"""),
        code(r"""
from facenet_keras.live.liveness import Prompt, assess

matching = Challenge((Prompt("turn_right", 3.2, 4.4), Prompt("turn_left", 4.6, 5.6), Prompt("turn_right", 5.8, 7.0)))
fits = assess(m_live, matching)
print(f"prompts matching the recording: live = {fits.live};",
      "; ".join(r for r in fits.reasons if "deg" in r or "blink" in r))
n_random = 10 if FAST else 50
random_results = [assess(m_live, Challenge.random(3, start=3.0, window=1.3, rng=seed)) for seed in range(n_random)]
passed = sum(r.live for r in random_results)
print(f"random challenges: {passed} of {n_random} passed by the recording "
      f"(each prompt's window is 1.3 s; a fresh challenge is drawn for every attempt)")
print("e.g.", "; ".join(random_results[0].reasons[:2]))
"""),
        md(r"""
## The timeline

Everything the door camera saw, on one time axis: each track from when it appeared to when it
left, coloured by its answer, the moment `watch` named it, and whether `verify_clip` opened the
door for it; the parallax score of each clip the door checked is printed beside it.
"""),
        code(
            r"""
verdict = {what: v for what, _, _, v in door}
fig, (ax, bx) = plt.subplots(2, 1, figsize=(12, 5.2), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
order = sorted(tracks)
for row, tid in enumerate(order):
    t = tracks[tid]
    colour = "tab:green" if t["identity"] else ("0.6" if t["status"] == "pending" else "tab:orange")
    ax.barh(row, max(t["left"] - t["appeared"], 0.05), left=t["appeared"], color=colour, height=0.6)
    for when, who in t["identified"]:
        ax.plot(when, row, "kv", ms=6)
    answer = t["identity"] or t["status"]
    v = next((v for what, v in verdict.items() if what.startswith(f"track {tid},")), None)
    if v is None:
        note = ""
    elif isinstance(v, str):
        note = "  door shut: no face to check"
    elif v.match:
        note = "  DOOR OPENS"
    else:
        note = "  door shut: " + ("too short for liveness" if v.liveness.cues.get("face_seconds", 0) < 1.5
                                  else "not live" if not v.liveness.live else "too far")
    ax.text(t["left"] + 0.08, row, f"#{tid} {answer}{note}", va="center", fontsize=8)
ax.set_yticks([]); ax.set_ylabel("tracks"); ax.invert_yaxis()
ax.set_title("door camera: tracks (green: household, orange: not recognised, grey: undecided; v: identified)",
             fontsize=10)
for tid in order:
    pts = np.array([(t, d.min()) for t, tr, d in rows if tr == tid]).reshape(-1, 2)
    if len(pts):
        bx.plot(*pts.T, "o-", ms=3, color=cmap(tid % 20))
bx.axhline(tau, color="k", ls="--", lw=1)
bx.set_ylabel("nearest enrolled\ndistance"); bx.set_xlabel("time in the clip (s)")
ax.set_xlim(0, duration + 3.0)
plt.tight_layout()
plt.show()
""",
            README_TAG,
        ),
        md(r"""
What the door defends against, and what not (as in the package's README): a printed or displayed
*photo* fails the passive cues; a *replayed video* passes them and needs the active challenge; a
good 3-D mask or a real-time deepfake that follows the prompts is not stopped by either (a texture
or depth model would be needed: `check_liveness(..., spoof_model=...)` takes a user-supplied one;
none ships and nothing is downloaded). The command line does the same:
`facenet-keras watch CLIP --gallery G --annotate out.mp4` and
`facenet-keras verify CLIP NAME --liveness`.
"""),
    ]


NOTEBOOK_SOURCES = {
    "01_face_verification_and_recognition.ipynb": notebook_01,
    "02_triplet_loss_and_one_shot_learning.ipynb": notebook_02,
    "03_siamese_binary_classification.ipynb": notebook_03,
    "04_neural_style_transfer.ipynb": notebook_04,
    "05_door_camera.ipynb": notebook_05,
}


def build(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives identical files
        cell.id = f"cell-{i:02d}"
    return nb


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _shape(nb) -> list[tuple]:
    """What the generator decides about a notebook: each cell's type, source and tags."""
    return [(c.cell_type, c.source, _tags(c)) for c in nb.cells]


def problems_with_stored(stored, generated) -> list[str]:
    """Why a stored notebook is not a full-settings run of the current generated one ([] if it is)."""
    if _shape(stored) != _shape(generated):
        return ["its cells differ from the generator's"]
    out = []
    code = [c for c in stored.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    if counts != list(range(1, len(code) + 1)):
        out.append("not executed top to bottom in one run")
    first = "".join(o.get("text", "") for o in code[0].outputs) if code else ""
    if "FAST=False" not in first:
        out.append("not executed at full settings (FAST=False)")
    for c in code:
        if PRIVATE_TAG in _tags(c) and any(t in o.get("data", {}) for o in c.outputs for t in IMAGE_TYPES):
            out.append(f"cell {c.id} is tagged {PRIVATE_TAG} but stores a picture")
        if any(o.output_type == "error" for o in c.outputs):
            out.append(f"cell {c.id} stored an error")
    return out


def scrub(nb) -> None:
    """Keep what a reader needs: no stderr (progress bars), no timings, no pictures in private cells."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        private = PRIVATE_TAG in _tags(cell)
        kept = []
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stderr":
                continue
            if private and any(t in out.get("data", {}) for t in IMAGE_TYPES):
                continue
            kept.append(out)
        cell.outputs = kept


def execute(nb, timeout: int):
    """Run a notebook at full settings (FAST off, the shared data used when present)."""
    import nbclient

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("FACENET_KERAS_FAST", None)
    env.pop("FACENET_KERAS_NO_SHARED_DATA", None)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env=env)
    scrub(nb)
    return nb


def save_readme_figure(nb, stem: str) -> Path | None:
    """The first PNG of the cell tagged readme-figure -> docs/images/<stem>.png."""
    for cell in nb.cells:
        if cell.cell_type == "code" and README_TAG in _tags(cell) and PRIVATE_TAG not in _tags(cell):
            for out in cell.outputs:
                if "image/png" in out.get("data", {}):
                    IMAGES.mkdir(parents=True, exist_ok=True)
                    path = IMAGES / f"{stem}.png"
                    path.write_bytes(base64.b64decode(out["data"]["image/png"]))
                    return path
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a stored notebook is out of date or was not executed at full settings",
    )
    parser.add_argument(
        "--execute",
        action="store_true",
        help="execute at full settings and store with outputs (and the README figures)",
    )
    parser.add_argument("--only", nargs="*", default=None, metavar="NN", help="only these notebooks (01 04 ...)")
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell time limit with --execute, seconds")
    args = parser.parse_args(argv)
    NOTEBOOKS.mkdir(exist_ok=True)
    stale = []
    for name, make in NOTEBOOK_SOURCES.items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        nb = build(make())
        nbformat.validate(nb)
        path = NOTEBOOKS / name
        if args.check:
            if not path.is_file():
                stale.append(f"{name} (missing)")
                continue
            why = problems_with_stored(nbformat.read(path, as_version=4), nb)
            if why:
                stale.append(f"{name} ({'; '.join(why)})")
            continue
        if args.execute:
            t0 = time.perf_counter()
            execute(nb, args.timeout)
            figure = save_readme_figure(nb, path.stem)
            print(
                f"executed {name} in {time.perf_counter() - t0:.0f} s"
                + (f"; README figure {figure.relative_to(ROOT)}" if figure else "")
            )
        nbformat.validate(nb)
        path.write_text(nbformat.writes(nb) + "\n")
        print(f"wrote {path.relative_to(ROOT)} ({len(nb.cells)} cells{', with outputs' if args.execute else ''})")
    if stale:
        print("out of date (run make notebooks):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
