# %% [markdown]
# # 1. Face verification and recognition
#
# Two questions, one tool:
#
# * **verification (1:1)**: *is this the person they claim to be?* (unlocking a phone);
# * **recognition (1:K)**: *who is this, if anyone we know?* (letting employees through a door).
#
# Both rest on an **encoder** $f$ that maps a face photo to a short vector, its *encoding* or
# *embedding*, such that photos of the same person land close together and photos of different people
# far apart. Then a decision is just a distance compared with a threshold. This notebook uses the
# package's pretrained encoder (dlib's ResNet, 128 numbers per face) on two public-domain portraits
# that ship with matplotlib and scikit-image: Rear Admiral Grace Hopper and astronaut Eileen Collins.
#
# **Data.** Everything up to the annotated group photo runs on those bundled portraits. The last
# part (a folder of people, 1:K false accepts) uses the project's development data in
# `../shared/data` when it sits beside the repository: without it the folder enrolment is skipped
# and the 1:K curves are drawn from *simulated* distances (the cells say so).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from facenet_keras.demo import notebook_setup

FAST, SHARED = notebook_setup()  # FAST: the test suite's small sizes; SHARED: ../shared/data or None

# %%
import facenet_keras as fk
from facenet_keras.demo import changed_copy, sample_portraits, side_by_side

people = sample_portraits()  # name -> RGB uint8 array
grace, eileen = people["Grace Hopper"], people["Eileen Collins"]

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, (name, photo) in zip(axes, people.items()):
    ax.imshow(photo)
    ax.set_title(f"{name}  {photo.shape[1]}x{photo.shape[0]}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The course's three functions
#
# The course builds face verification and recognition from three functions, and so can you, with the
# same names, on any photo (the face is found and aligned for you):
#
# * `img_to_encoding(image_path, model)`: a photo -> its **encoding** $f(x)$, 128 numbers;
# * `verify(image_path, identity, database, model)`: *is this the claimed person?* -> `(dist, door_open)`;
# * `who_is_it(image_path, database, model)`: *who is this?* -> `(min_dist, identity)`.
#
# The `database` is a plain dict, name -> encoding: enrolling someone is one line, from one photo.
# (`model=None` is the package's pretrained encoder. Unlike the course, `who_is_it` answers
# `identity=None` for a stranger instead of the nearest name.)

# %%
import tempfile
from pathlib import Path

from PIL import Image
from skimage import data as skdata

from facenet_keras.course import img_to_encoding, verify, who_is_it

photo_dir = Path(tempfile.mkdtemp(prefix="facenet-course-"))


def save(photo, name):
    """Write an RGB array to photo_dir/name and return the path (the course works on image files).

    PNG is lossless: a JPEG's re-encoding would move the distances below by a few thousandths.
    """
    path = photo_dir / name
    Image.fromarray(photo).save(path)
    return str(path)


database = {"grace": img_to_encoding(save(grace, "grace.png")), "eileen": img_to_encoding(save(eileen, "eileen.png"))}
print({name: encoding.shape for name, encoding in database.items()})

# %%
camera = save(changed_copy(grace), "camera_0.png")  # someone at the door: a new picture of Grace
for claim in ("grace", "eileen"):
    dist, door_open = verify(camera, claim, database)
    print(
        f"claims to be {claim}: dist = {dist:.3f} ->",
        f"It's {claim}, welcome in!" if door_open else f"It's not {claim}, please go away",
    )

cameraman = save(np.repeat(skdata.camera()[..., None], 3, axis=-1), "camera_1.png")  # not enrolled
for path in (camera, cameraman):
    min_dist, identity = who_is_it(path, database)
    print(
        f"{Path(path).name}: min_dist = {min_dist:.3f} ->", f"it's {identity}" if identity else "Not in the database."
    )

# %% [markdown]
# The rest of this notebook opens the box: what an encoding is, how a face becomes a chip, the
# distance and its threshold, and the package's own API, which does the same with more detail
# (`fk.verify`, `fk.recognize`, `fk.compare`, a persistent `FaceGallery`) and at scale.
#
# ## What an encoding is
#
# The encoder is a deep ConvNet trained (on millions of photos of thousands of people) so that
# $\lVert f(x_1) - f(x_2) \rVert_2$ is small for two photos of one person and large otherwise. It is
# never trained on the people we will recognise: the embedding is *general*, which is what makes
# one-shot enrolment possible later. It takes an aligned 150x150 face chip and returns 128 numbers.

# %%
encoder = fk.load_encoder()  # pretrained weights, converted once and cached
print(
    f"{encoder.name}: input {encoder.input_shape} -> output {encoder.output_shape}, "
    f"{encoder.count_params():,} parameters"
)

# %% [markdown]
# ## From a photo to a chip
#
# The encoder wants every face the same way: a face detector (MTCNN) finds each face and five
# landmarks (eyes, nose, mouth corners); a similarity transform (rotation, scale, shift) then maps the
# face's landmarks onto a fixed template, so the eyes always land on the same pixels of the chip.
# `fk.align_faces` cuts exactly the chips the pipeline feeds the encoder (its size, its alignment),
# so `fk.encode_chips(fk.align_faces(photo))` lands in the same embedding space as a gallery.

# %%
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
    ax.set_title(f"{name}: confidence {det.confidence:.3f}", fontsize=9)
    ax.axis("off")
    axes[2 * i + 1].imshow(chips[name][0])
    axes[2 * i + 1].set_title("aligned 150x150 chip", fontsize=9)
    axes[2 * i + 1].axis("off")
plt.show()

# %% [markdown]
# ## Encode two photos
#
# `encode_chips` runs the network on a batch of chips. The numbers themselves mean nothing one by
# one; only distances between encodings do. Below: Grace's encoding, the encoding of a *changed
# copy* of her photo (cropped, rescaled, brighter, mirrored), and Eileen's.
#
# One more step makes encodings steadier: the pipeline behind `verify`, `recognize`, `compare` and
# the course's functions encodes each chip **and its mirror image** and averages the two
# (test-time augmentation). A face then looks the same to the encoder whichever way it is turned,
# which matters here: the changed copy is mirrored. We do the same by hand, so the distances below
# are the ones the rest of the notebook reports for this pair.

# %%
probe = changed_copy(grace)  # same person, different picture
(probe_chip,) = fk.align_faces(probe, fk.detect_faces(probe)[:1])
three = np.stack([chips["Grace Hopper"][0], probe_chip, chips["Eileen Collins"][0]])
one_pass = fk.encode_chips(three)  # the network once per chip
emb = (one_pass + fk.encode_chips(three[:, :, ::-1])) / 2  # averaged with the mirrored chips, as the pipeline does
labels = ["Grace Hopper", "Grace Hopper (changed copy)", "Eileen Collins"]
print("encodings:", emb.shape, emb.dtype)

fig, axes = plt.subplots(1, 3, figsize=(12, 2.6))
lim = np.abs(emb).max()
for ax, e, label in zip(axes, emb, labels):
    ax.imshow(e.reshape(8, 16), cmap="coolwarm", vmin=-lim, vmax=lim)
    ax.set_title(label, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("128 numbers per face, drawn as 8x16 tiles")
plt.show()

# %% [markdown]
# ## The distance $d$ and the threshold $\tau$
#
# $$d(x_1, x_2) = \lVert f(x_1) - f(x_2) \rVert_2, \qquad \text{same person} \iff d \le \tau .$$
#
# For this encoder the classic threshold is $\tau = 0.6$: same-person pairs are mostly well below
# it, different people mostly above. (`facenet-keras calibrate` picks $\tau$ from your own data.)

# %%
tau = fk.DEFAULT_THRESHOLD
d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
print(f"d(Grace, changed copy of Grace) = {d[0, 1]:.3f}  -> same person: {d[0, 1] <= tau}")
print(f"d(Grace, Eileen)                = {d[0, 2]:.3f}  -> same person: {d[0, 2] <= tau}")
d_one = np.linalg.norm(one_pass[0] - one_pass[1])
print(f"(one pass per chip, no mirror: d(Grace, changed copy) = {d_one:.3f}; the mirror average is steadier)")

fig, ax = plt.subplots(figsize=(6, 2.4))
pairs = {"Grace vs her changed copy": d[0, 1], "Grace vs Eileen": d[0, 2], "changed copy vs Eileen": d[1, 2]}
ax.barh(list(pairs), list(pairs.values()), color=["tab:green" if v <= tau else "tab:red" for v in pairs.values()])
ax.axvline(tau, color="black", ls="--", label=f"threshold tau = {tau}")
ax.set_xlabel("Euclidean distance between encodings")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## `verify`: a 1:1 claim against a gallery
#
# A **gallery** stores the encodings of enrolled people (in an SQLite file). Enrolment is *one-shot*:
# one photo is enough, and nothing is retrained; the photo's encoding is simply stored. `verify`
# detects the face in the probe, encodes it and compares it with the claimed identity's encodings.

# %%
workdir = Path(tempfile.mkdtemp(prefix="facenet-notebook-"))
gallery = fk.FaceGallery(workdir / "gallery.sqlite")
gallery.enroll("Grace Hopper", grace)  # one photo, one row in the gallery
print(gallery, gallery.people())

for photo, text in [
    (changed_copy(grace, mirror=False, scale=0.5), "a half-size copy of Grace"),
    (eileen, "the astronaut"),
]:
    v = fk.verify(photo, "Grace Hopper", gallery)
    print(f"claim '{text} is Grace Hopper': match={v.match}  (d = {v.distance:.3f}, tau = {v.threshold})")

# %% [markdown]
# Two photos and no gallery at all: `fk.compare` (or `facenet-keras compare A.jpg B.jpg` in a shell,
# exit code 0 for a match, 1 for none) answers with the same rule, through the same pipeline: Grace
# and her changed copy are as far apart as the mirror-averaged encodings above (and the course's
# `verify` at the top) said.

# %%
for a, b, text in [(grace, changed_copy(grace), "Grace vs her changed copy"), (grace, eileen, "Grace vs Eileen")]:
    c = fk.compare(a, b)
    print(f"{text:26s}: match={c.match}  (d = {c.distance:.3f}, tau = {c.threshold})")

# %% [markdown]
# ## `recognize`: who is it, or *not recognised*
#
# Recognition searches the whole gallery for the nearest enrolled encoding; when even the nearest is
# farther than $\tau$ the answer is *not recognised* (`identity is None`) rather than the wrong name.

# %%
(r,) = fk.recognize(eileen, gallery)
print(f"identity={r.identity!r}: nearest is {r.nearest!r} at d = {r.distance:.3f} > tau = {r.threshold}")
assert r.identity is None  # a stranger is not forced onto an enrolled name

# %% [markdown]
# Enrolment can also take **precomputed encodings**: here we add Eileen from the encoding computed
# earlier, without running the network again (useful when encodings come from a batch job).

# %%
gallery.add("Eileen Collins", emb[2])  # (128,) or (N, 128) float32
print(gallery.people())
(r,) = fk.recognize(changed_copy(eileen, mirror=False, brightness=0.8), gallery)
print(f"now: identity={r.identity!r} at d = {r.distance:.3f}; runner-up {r.runner_up!r} at {r.runner_up_distance:.3f}")

# %% [markdown]
# ## An annotated group photo
#
# A made-up group photo: changed copies of the two enrolled women and scikit-image's *cameraman*,
# who is not enrolled. Every face is found, judged, encoded and looked up in one call. A face the
# quality gate turns away (`r.face.gated`: "too small", "not a face?" or "low quality") is never
# named, whoever it looks like: it is drawn grey with its reason. The cameraman's face, half hidden
# behind his camera, is one the detector is unsure of (score below the gate's 0.89): the gate reports
# "not a face?" rather than guess.

# %%
from facenet_keras.faces.annotate import annotate

cameraman = np.repeat(skdata.camera()[..., None], 3, axis=-1)  # grayscale -> RGB
group = side_by_side(
    changed_copy(eileen, mirror=False, brightness=0.8), cameraman, changed_copy(grace), height=300 if FAST else 400
)
results = fk.recognize(group, gallery)
labels = [
    f"not usable: {r.face.gated}" if r.face.gated else f"{r.identity or 'not recognised'} ({r.distance:.2f})"
    for r in results
]
for r, label in zip(results, labels):
    print(f"box {np.round(r.box).astype(int)}: {label}")
picture = annotate(
    group,
    [r.box for r in results],
    labels,
    known=[r.identity is not None for r in results],
    gated=[r.face.gated for r in results],
)
assert sorted(r.identity or "?" for r in results) == ["?", "Eileen Collins", "Grace Hopper"]

# %% tags=["readme-figure"]
fig, ax = plt.subplots(figsize=(11, 4))
ax.imshow(picture)
ax.axis("off")
ax.set_title("recognize(): green = enrolled person found, red = not recognised, grey = not usable")
plt.show()

# %% [markdown]
# ## At scale: a folder of people
#
# The course's `database` dict holds a handful of people. A `FaceGallery` holds many, on disk, and
# `enroll_folder` enrols a whole folder (one sub-folder per person; `facenet-keras enroll
# --from-folder DIR` in a shell) with a report for every photo: enrolled, no face, several faces
# (refused: which face is the person would be a guess), duplicate, unreadable. The development photos
# in `../shared/data/faces` are 186 photos of 44 people; nothing of them is shown here but names and
# numbers (the photos may not be redistributed).

# %%
if SHARED is not None:
    folder = SHARED / "faces"
    if FAST:  # a few people with small photos, linked into a temporary folder
        folder = Path(tempfile.mkdtemp(prefix="facenet-folder-"))
        for name in ("dlib_john_salley", "dlib_john_savage", "deepface_01", "bbt_amy"):
            (folder / name).symlink_to(SHARED / "faces" / name)
    big = fk.FaceGallery(workdir / "people.sqlite")
    report = big.enroll_folder(folder)
    print("photos:", report.counts())
    for p in report.photos:
        if p.outcome != "enrolled":
            print(
                f"  {p.outcome}: {Path(p.path).parent.name}/{Path(p.path).name}"
                + (f" ({p.faces} faces)" if p.faces > 1 else "")
            )
    print(f"{len(big.people())} people enrolled, {len(big.photos())} encodings")
    # the course's who_is_it takes the gallery as its database too
    probe = next(p for p in report.photos if p.outcome == "enrolled")
    min_dist, identity = who_is_it(probe.path, big)
    print(f"who_is_it on one of the enrolled photos, the gallery as its database: {identity} (min_dist {min_dist:.3f})")
else:
    print("../shared/data not found: skipping the folder enrolment")

# %% [markdown]
# ## Why 1:K needs a stricter threshold than 1:1
#
# At threshold $\tau$ a single comparison with someone else is a false accept with a small
# probability $p$ (the 1:1 *false accept rate*, FAR). A stranger at the door is compared with all $K$
# enrolled people and is let in if **any** of them is within $\tau$:
#
# $$\text{FAR}_{1:K} \approx 1 - (1 - p)^K \approx K\,p \quad (\text{while small}).$$
#
# A threshold that is fine for one claim lets in strangers once the gallery holds hundreds of people.
# Below, real distances measure this on photos of many people (LFW, from `../shared/data` when
# present): each person enrolled from one photo, probed with another. Without the data a *simulated*
# distance matrix illustrates the same arithmetic.

# %%
from facenet_keras import evaluation as ev
from facenet_keras.evaluation import plots

if SHARED is not None:
    from facenet_keras.evaluation.protocols import primary_embeddings

    root = SHARED / "lfw-dev" / "images"
    folders = {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}
    names = [n for n, photos in folders.items() if len(photos) >= 2][: 20 if FAST else 150]
    # the main face of each photo, through an on-disk cache (a second run skips the network)
    embs, failed = primary_embeddings([folders[n][0] for n in names] + [folders[n][1] for n in names])
    first, second = embs[: len(names)], embs[len(names) :]
    keep = [i for i in range(len(names)) if first[i] is not None and second[i] is not None]
    names = np.array([names[i] for i in keep])
    enrolled, probes = np.stack([first[i] for i in keep]), np.stack([second[i] for i in keep])
    D, identities = ev.identity_distances(enrolled, names, probes)  # (probes, people)
    own = identities[None, :] == names[:, None]  # the probe's own identity
    source = f"LFW, {len(names)} people"
else:  # illustration only: genuine ~ N(0.40, 0.08), impostor ~ N(0.80, 0.08), like this encoder
    rng = np.random.default_rng(0)
    D = rng.normal(0.80, 0.08, (40, 40))
    np.fill_diagonal(D, rng.normal(0.40, 0.08, 40))
    own = np.eye(40, dtype=bool)
    source = "SIMULATED distances, ../shared/data not found"
genuine, impostor = D[own], D[~own]
print(f"{source}: {genuine.size} genuine pairs, {impostor.size} impostor pairs")
fig = plots.plot_verification(
    np.concatenate([genuine, impostor]),
    np.r_[np.ones(genuine.size, bool), np.zeros(impostor.size, bool)],
    tau,
    title=f"1:1 verification ({source})",
)
fig

# %%
target = 0.01  # at most 1 stranger in 100 let in
K = int((~own).sum(axis=1).min())  # the largest gallery we can measure
tau_1 = ev.threshold_for_gallery_size(D, 1, target, exclude=own)
tau_K = ev.threshold_for_gallery_size(D, K, target, exclude=own)
curves = {
    f"tau = {tau:.2f} (default)": ev.false_accept_vs_gallery_size(D, tau, exclude=own),
    f"tau = {tau_K:.3f} (FAR {target:g} at K = {K})": ev.false_accept_vs_gallery_size(D, tau_K, exclude=own),
}
if abs(tau_1 - tau) > 0.01:
    curves[f"tau = {tau_1:.3f} (FAR {target:g} at K = 1)"] = ev.false_accept_vs_gallery_size(D, tau_1, exclude=own)
print(
    f"to let in at most {target:.0%} of strangers: tau = {tau_1:.3f} for one claim (1:1), "
    f"but tau = {tau_K:.3f} for a gallery of {K} people"
)
plots.plot_false_accept_vs_gallery_size(
    curves, target=target, log_y=True, title=f"1:K false accepts grow with K ({source})"
)

# %% [markdown]
# The solid lines are measured, the dashed ones are $1-(1-p)^K$. The threshold that keeps one claim
# at 1% false accepts lets in many more strangers against a large gallery; to keep the same rate for
# 1:K the threshold has to come down, which in turn rejects more genuine visitors (the ROC above
# shows what it costs). That trade-off is why recognition systems calibrate $\tau$ for their gallery
# size (`facenet-keras evaluate-identification`).

# %%
gallery.close()
if SHARED is not None:
    big.close()
