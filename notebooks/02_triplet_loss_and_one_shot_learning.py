# %% [markdown]
# # 2. The triplet loss and one-shot learning
#
# How is an encoder like notebook 1's trained? Not to *name* people (the people we will meet are not
# in the training set) but to *place* them: photos of one person close together, of different people
# far apart. The **triplet loss** says exactly that, for an anchor $A$, a positive $P$ (same
# identity) and a negative $N$ (another identity):
#
# $$\mathcal{L}(A, P, N) = \max\big(\lVert f(A) - f(P)\rVert^2 - \lVert f(A) - f(N)\rVert^2 + \alpha,\; 0\big).$$
#
# The **margin** $\alpha$ matters: without it, $f \equiv 0$ (every input at one point) would have zero
# loss. With it, the negative must be farther than the positive *by at least* $\alpha$.
#
# To keep this notebook fast on a laptop CPU we train on scikit-learn's handwritten digits (each
# digit class plays an "identity"), then do **one-shot classification** of digits the encoder never
# saw in training: enrol *one* example each of 7, 8 and 9, recognise all the others.
#
# **Data.** The digits ship with scikit-learn. The last part (one-shot learning on faces) uses the
# project's development data in `../shared/data` when it sits beside the repository; without it
# that part runs on the two bundled public-domain portraits and changed copies of them (a much
# easier test; the cells say so).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from facenet_keras.demo import notebook_setup

FAST, SHARED = notebook_setup()  # FAST: the test suite's small sizes; SHARED: ../shared/data or None

# %% [markdown]
# ## Easy, semi-hard and hard triplets
#
# For an anchor and a positive at distance $d(A,P)$, a negative falls in one of three bands:
#
# * **easy**: $d(A,N) > d(A,P) + \alpha$: loss 0, nothing to learn;
# * **semi-hard**: $d(A,P) < d(A,N) < d(A,P) + \alpha$: correct order, but inside the margin;
# * **hard**: $d(A,N) < d(A,P)$: the negative is closer than the positive.
#
# Once training gets going, random triplets are mostly easy and training on them stalls. FaceNet
# trains on *semi-hard* triplets mined inside each batch; the hardest ones alone tend to collapse the
# model early on. (The package
# uses squared distances, as the formula does.)

# %%
from facenet_keras.training import losses

alpha = 0.2
anchor, positive = np.array([0.0, 0.0]), np.array([0.5, 0.0])  # d(A,P)^2 = 0.25
rng = np.random.default_rng(1)
negatives = rng.uniform(-1.1, 1.1, size=(60, 2))
d_ap = np.sum((anchor - positive) ** 2)
d_an = np.sum((negatives - anchor) ** 2, axis=1)
per_triplet = np.array(
    [float(losses.triplet_loss(None, [anchor[None], positive[None], n[None]], alpha=alpha)) for n in negatives]
)
kind = np.where(d_an < d_ap, "hard", np.where(d_an < d_ap + alpha, "semi-hard", "easy"))

fig, ax = plt.subplots(figsize=(5.5, 5.5))
for r2, style in [(d_ap, "-"), (d_ap + alpha, "--")]:
    ax.add_patch(plt.Circle(anchor, np.sqrt(r2), fill=False, ls=style, color="0.4"))
colors = {"hard": "tab:red", "semi-hard": "tab:orange", "easy": "tab:green"}
for k, c in colors.items():
    m = kind == k
    ax.scatter(*negatives[m].T, c=c, s=20 + 300 * per_triplet[m], label=f"{k} negatives ({m.sum()})", alpha=0.8)
ax.plot(*anchor, "k*", ms=14, label="anchor A")
ax.plot(*positive, "bP", ms=11, label="positive P")
ax.set_aspect("equal")
ax.set_xlim(-1.15, 1.15)
ax.set_ylim(-1.15, 1.15)
ax.set_title(
    f"circles: d(A,N)^2 = d(A,P)^2 and = d(A,P)^2 + alpha (alpha={alpha})\nmarker size ~ triplet loss", fontsize=9
)
ax.legend(fontsize=8, loc="lower left")
plt.show()
print("loss per kind:", {k: round(float(per_triplet[kind == k].mean()), 3) for k in colors if (kind == k).any()})

# %% [markdown]
# ## The data: digits as identities
#
# 1,797 8x8 digits, upsampled to 16x16 RGB. Digits 0-6 are the training "identities"; **7, 8 and 9
# are never shown to the encoder during training**.

# %% tags=["private-photos"]
import keras

from facenet_keras.training.data import load_digits_images, pk_dataset
from facenet_keras.training.fit import embed, one_shot_accuracy, train_encoder, verification_accuracy

SIZE = 16
EPOCHS, STEPS = (2, 15) if FAST else (4, 15)  # training length: FAST for CI, the rest for you
images, labels = load_digits_images(SIZE)
train = labels < 7
unseen = ~train
print(f"{train.sum()} training images (digits 0-6), {unseen.sum()} images of unseen digits 7-9")

fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for digit, ax in enumerate(axes):
    ax.imshow(images[labels == digit][0].astype("uint8"))
    ax.set_title(str(digit))
    ax.axis("off")
plt.show()

# %% [markdown]
# ## A small encoder, before training
#
# Seven training classes of 1,000 tiny images are very little to learn a *general* notion of "same
# digit" from, and a big encoder learns the seven classes instead. The course's NN4.small2 (the
# OpenFace FaceNet variant, in `facenet_keras.models.nn4_small2`, 257k parameters at a quarter width
# on 32x32 digits) does exactly that here: after two epochs its triplet loss on digits 0-6 is near
# zero, while its one-shot accuracy on the unseen digits swings between 0.50 and 0.74 from one epoch
# to the next around its untrained 0.57, whatever we tried (learning rate 3e-3 or 1e-3, margin 0.2,
# 0.5 or 1.0, semi-hard or batch-all mining, with or without augmentation; 8 epochs of 25 steps,
# one seed): the unseen digits' embeddings end up spanning only 3-6 directions, the training
# classes' layout reused. So the encoder trained from scratch here is a tiny one, defined right below: two
# convolutions and a 16-D unit-length output, 36k parameters. Untrained, its embeddings already
# carry *some* information (random convolutions are not nothing), which is why we compare before and
# after.

# %%
L = keras.layers
keras.utils.set_random_seed(0)
encoder = keras.Sequential(
    [
        keras.Input((SIZE, SIZE, 3)),
        L.Rescaling(1 / 255.0),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dense(16),
        L.UnitNormalization(),  # f(x) on the unit sphere, 16 numbers
    ],
    name="small_convnet",
)
print(f"{encoder.name}: {encoder.count_params():,} parameters, output {encoder.output_shape}")
before = embed(encoder, images)  # (1797, 16), kept for the comparison
MARGIN = 0.5  # alpha for this training (squared distances on the sphere: 0..4)


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

# %% [markdown]
# ## Train with semi-hard triplet mining
#
# Each batch holds $P$ identities x $K$ examples (here 7 x 8); the loss looks at every valid
# (anchor, positive) pair in the batch and picks its semi-hard negative, with margin
# $\alpha = 0.5$ (the bands above and below use the same $\alpha$). `active_triplets` counts the
# pairs still violating the margin: it falls as the encoder learns.

# %%
dataset = pk_dataset(images[train], labels[train], P=7, K=8, augment=False, seed=0)
history = train_encoder(
    encoder,
    dataset,
    epochs=EPOCHS,
    steps_per_epoch=STEPS,
    mining="semi-hard",
    margin=MARGIN,
    learning_rate=3e-3,
    verbose=0,
)
after = embed(encoder, images)

fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(history.history["loss"], "o-")
axes[0].set_title("semi-hard triplet loss")
axes[0].set_xlabel("epoch")
axes[1].plot(history.history["active_triplets"], "o-", color="tab:orange")
axes[1].set_title("active (anchor, positive) pairs per batch")
axes[1].set_xlabel("epoch")
plt.show()

bands_after = triplet_bands(after[unseen], labels[unseen])
print("triplets of unseen digits, trained encoder:  ", {k: f"{v:.1%}" for k, v in bands_after.items()})
for name, e in [("before", before), ("after", after)]:
    print(
        f"verification accuracy on unseen digits 7-9 {name} training: "
        f"{verification_accuracy(e[unseen], labels[unseen]):.3f}"
    )

# %% [markdown]
# ## Embeddings before and after, in 2-D
#
# The 16-D embeddings projected on their first two principal components (PCA), one colour per digit.
# Digits 7, 8 and 9 (crosses) were never trained on. What one-shot learning needs is that they,
# too, gather into clusters of their own: that the encoder learns a *general* notion of "same digit".
# Whether this short training gets there is for the numbers to say: compare the triplet bands above
# and the one-shot accuracy below, before and after. (FAST mode, the test suite's, trains for half
# as many steps; `benchmarks/one_shot_digits.py` repeats the experiment over several seeds.)

# %% tags=["readme-figure"]
from sklearn.decomposition import PCA

show = np.random.default_rng(0).choice(len(labels), size=600 if FAST else 1797, replace=False)
fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
for ax, (title, emb) in zip(axes, [("untrained encoder", before), ("after triplet training", after)]):
    xy = PCA(n_components=2).fit_transform(emb[show])
    for digit in range(10):
        m = labels[show] == digit
        ax.scatter(
            *xy[m].T,
            s=14 if digit < 7 else 30,
            marker="o" if digit < 7 else "x",
            color=plt.cm.tab10(digit),
            label=f"{digit}" + (" (unseen)" if digit >= 7 else ""),
        )
    ax.set_title(f"PCA of the embeddings: {title}")
    ax.set_xticks([])
    ax.set_yticks([])
axes[1].legend(fontsize=8, ncol=2, loc="best")
plt.show()

# %% [markdown]
# ## One-shot classification of unseen classes
#
# Enrol **one** example of each unseen digit (7, 8, 9) and label every other image of those digits by
# its nearest enrolled example, exactly as `recognize` does with faces. Chance is 1/3. The result
# depends on which examples were enrolled, so we average over many random draws.

# %% tags=["private-photos"]
classes = np.array([7, 8, 9])
trials = 100 if FAST else 200  # draws are cheap: enough of them to see a gain of a few points
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
verdict = "it helped" if gain > 2 * noise else "it hurt" if gain < -2 * noise else "no clear change over these draws"
print(
    f"training on digits 0-6 changed one-shot accuracy on the unseen digits by {gain:+.3f} "
    f"(+/- {noise:.3f} over the draws): {verdict}" + (f" (FAST mode: {EPOCHS * STEPS} steps)" if FAST else "")
)

support = draws[0]
query = np.setdiff1d(np.flatnonzero(unseen), support)[::37][:12]
d = np.linalg.norm(after[query][:, None] - after[support][None], axis=-1)
pred = classes[np.argmin(d, axis=1)]
fig, axes = plt.subplots(2, 12, figsize=(12, 2.6))
for ax, i, c in zip(axes[0], support, classes):
    ax.imshow(images[i].astype("uint8"))
    ax.set_title(f"enrolled {c}", fontsize=8)
for ax, i, p in zip(axes[1], query, pred):
    ax.imshow(images[i].astype("uint8"))
    ax.set_title(f"-> {p}", fontsize=8, color="green" if p == labels[i] else "red")
for ax in axes.ravel():
    ax.axis("off")
plt.show()

# %% [markdown]
# How much of this is luck? `python benchmarks/one_shot_digits.py --models small_convnet --seeds 0 1 2 3 4`
# trains this encoder with these settings (4 epochs of 15 steps, margin 0.5) from five different
# random starts: one-shot accuracy on the unseen digits went from 0.619 untrained to 0.749 trained
# (mean of the five; every seed gained, by 0.04 to 0.21). The enrolled examples and some of the
# queries are drawn by the cell above (stored without its picture: scikit-learn's digits are
# CC BY 4.0, not public domain).
#
# The same recipe with faces: train on many people (FaceNet used 200 million photos of 8 million
# people), then enrol anyone from one photo. `facenet-keras train` fine-tunes an encoder on a folder of
# identities with the same loss and mining (see `benchmarks/one_shot_digits.py` for this experiment at
# full length).
#
# ## One-shot learning on faces
#
# Now with a real face encoder, trained that way on millions of photos (the package's pretrained
# dlib ResNet), and the course's functions: enrol **one** photo of each person into the course's
# `database` dict with `img_to_encoding`, then ask `who_is_it` about every other photo. The people
# are from `../shared/data/faces` (34 people with two or more photos: TV stills, press photos,
# 150x150 crops, some in grayscale); the encoder never saw these photos (some famous people among them
# may well have been in its 3 million training photos, the other ones hardly). The people
# with a single photo are never enrolled: they play strangers, for whom the right answer is
# "not in the database". Only numbers are shown (the photos may not be redistributed). Without
# `../shared/data`, a folder of the same shape is made from the bundled portraits: Grace Hopper
# and Eileen Collins, four photos each (the original and changed copies), and the cameraman as the
# stranger.

# %%
import tempfile
from pathlib import Path

from PIL import Image
from skimage import data as skdata
from tqdm.auto import tqdm

import facenet_keras as fk
from facenet_keras.course import img_to_encoding, who_is_it
from facenet_keras.demo import changed_copy, sample_portraits
from facenet_keras.images import list_identities

if SHARED is not None:
    faces_dir = SHARED / "faces"
else:  # ROOT/<person>/<photo> from the bundled public-domain photos
    faces_dir = Path(tempfile.mkdtemp(prefix="one-shot-faces-"))
    bundled = {name.split()[0].lower(): photo for name, photo in sample_portraits().items()}
    bundled_photos = {
        name: [photo, changed_copy(photo), changed_copy(photo, mirror=False, scale=0.5), changed_copy(photo, crop=0.15)]
        for name, photo in bundled.items()
    }
    bundled_photos["cameraman"] = [np.repeat(skdata.camera()[..., None], 3, axis=-1)]
    for name, photos in bundled_photos.items():
        (faces_dir / name).mkdir()
        for i, photo in enumerate(photos):
            Image.fromarray(photo).save(faces_dir / name / f"{i}.png")
people = list_identities(faces_dir)
multi = {name: photos for name, photos in people.items() if len(photos) >= 2}
strangers = [photos[0] for name, photos in people.items() if len(photos) == 1]
if FAST and SHARED is not None:  # four people with 150x150 crops, three photos each, and one stranger
    multi = {name: multi[name][:3] for name in ("dlib_john_salley", "dlib_john_savage", "dlib_john_simm", "bbt_amy")}
    strangers = strangers[:1]
database = {name: img_to_encoding(photos[0]) for name, photos in multi.items()}  # one photo each
probes = [(photo, name) for name, photos in multi.items() for photo in photos[1:]]
answers = [who_is_it(photo, database) for photo, _ in tqdm(probes + [(p, None) for p in strangers], desc="who_is_it")]
known, unknown = answers[: len(probes)], answers[len(probes) :]
truth = np.array([name for _, name in probes])
named = np.array([identity or "(not recognised)" for _, identity in known])
dist = np.array([d for d, _ in known])
right = named == truth
print(f"{len(database)} people enrolled from one photo each; {len(probes)} other photos identified")
missed = named == "(not recognised)"
print(
    f"identification rate: {right.mean():.1%} ({right.sum()}/{len(probes)}); "
    f"not recognised: {missed.sum()}; a wrong name: {(~right & ~missed).sum()}"
)
print(
    f"strangers (never enrolled) answered 'not in the database': "
    f"{sum(identity is None for _, identity in unknown)}/{len(unknown)}"
)

# %% [markdown]
# The **errors**, and whom they were confused with. A face missed as "not recognised" was farther
# than the threshold from its own enrolled photo (a different age, pose, light, or a grayscale crop
# against a colour photo); a wrong name is nearer to someone else's photo than to its own.

# %%
wrong = np.flatnonzero(~right)
for i in wrong:
    photo, name = probes[i]
    print(f"  {name}/{Path(photo).name} -> {named[i]} (min_dist {dist[i]:.3f})")
involved = sorted(set(truth[wrong]) | set(named[wrong])) or ["(no errors)"]
confusion = np.zeros((len(involved), len(involved)), int)
for i in wrong:
    confusion[involved.index(truth[i]), involved.index(named[i])] += 1
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
axes[0].hist(
    [dist[right], dist[~right]],
    bins=np.linspace(0, 1, 26),
    stacked=True,
    color=["tab:green", "tab:red"],
    label=["identified", "error"],
)
tau = fk.DEFAULT_THRESHOLD
axes[0].axvline(tau, color="k", ls="--", label=f"threshold {tau}")
axes[0].set_xlabel("min_dist: distance to the nearest enrolled photo")
axes[0].set_ylabel("photos")
axes[0].legend()
axes[0].set_title("who_is_it on faces, one photo enrolled per person", fontsize=10)
axes[1].imshow(confusion, cmap="Reds")
axes[1].set_xticks(range(len(involved)), involved, rotation=60, ha="right", fontsize=8)
axes[1].set_yticks(range(len(involved)), involved, fontsize=8)
for (r, c), n in np.ndenumerate(confusion):
    if n:
        axes[1].text(c, r, n, ha="center", va="center")
axes[1].set_xlabel("answered")
axes[1].set_ylabel("true person")
axes[1].set_title("confusion of the errors only", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# To look at the errors themselves, run the next cell on your machine: it shows each wrongly
# answered photo beside the enrolled photo of the true person. (The stored notebook keeps this
# cell's text output only: the development photos may not be redistributed.)

# %% tags=["private-photos"]
if len(wrong):
    from facenet_keras.images import load_image

    shown = wrong[:6]
    fig, axes = plt.subplots(2, len(shown), figsize=(2.2 * len(shown), 4.6), squeeze=False)
    for k, i in enumerate(shown):
        photo, name = probes[i]
        axes[0, k].imshow(load_image(photo))
        axes[0, k].set_title(f"-> {named[i]}", fontsize=8, color="red")
        axes[1, k].imshow(load_image(multi[name][0]))
        axes[1, k].set_title(f"enrolled: {name}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    plt.show()
print(f"{len(wrong)} error(s) to look at")
