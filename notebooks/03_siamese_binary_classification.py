# %% [markdown]
# # 3. Verification as binary classification (Siamese network)
#
# Notebook 1 decided "same person?" with a distance and a threshold. DeepFace (Taigman et al., 2014)
# instead *learns* the decision: feed the two encodings of a pair, through the same (frozen) encoder,
# into a logistic regression unit
#
# $$\hat y = \sigma\Big(\sum_{k=1}^{128} w_k \,\big|f(x_1)_k - f(x_2)_k\big| + b\Big)
# \quad\text{or, with chi-square features,}\quad
# \hat y = \sigma\Big(\sum_k w_k \,\frac{(f(x_1)_k - f(x_2)_k)^2}{f(x_1)_k + f(x_2)_k} + b\Big),$$
#
# trained on pairs labelled 1 (same person) or 0 (different people). Both features are symmetric in
# $(x_1, x_2)$, each dimension gets its own weight (the plain distance weighs them all alike), and the
# output is a **probability**, which we can check for calibration.
#
# **Data.** The pairs come from LFW photos in the project's development data (`../shared/data`,
# beside the repository). Without it the notebook runs on scikit-learn's digits instead, as an
# illustration only, and the last cell (a pair of faces) is skipped; the cells say so.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from facenet_keras.demo import notebook_setup

FAST, SHARED = notebook_setup()  # FAST: the test suite's small sizes; SHARED: ../shared/data or None

# %% [markdown]
# ## Pairs of encodings
#
# Photos of people from LFW (in `../shared/data`), encoded once by the pretrained encoder of notebook 1
# (the encodings are cached on disk, so a second run is instant). People are split in two halves:
# the classifier is **trained on pairs of the first half and tested on people it never saw**.
# Without the shared data the notebook falls back to digits (an illustration only: a 30-D PCA of the
# pixels plays the encoder).

# %%
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
if SHARED is not None:  # train on half of the people, test on the others
    first_half = np.isin(who, identities[: len(identities) // 2])
else:  # only 10 digit classes: split the images instead
    first_half = rng.random(len(who)) < 0.5
train = make_pairs(emb[first_half], who[first_half])
test = make_pairs(emb[~first_half], who[~first_half])
print(
    f"{source}: {len(train[2])} training pairs, {len(test[2])} test pairs"
    + (" of other people" if SHARED is not None else "")
    + " (half same, half different)"
)

# %% [markdown]
# ## The two features
#
# Per dimension $k$, the median feature over same-person pairs and over different-people pairs. Some
# dimensions separate the two classes better than others; a learned weight per dimension can use
# that, a plain Euclidean distance cannot. (Chi-square was designed for DeepFace's non-negative ReLU
# features; dlib's encodings are signed, so the package divides by $|f(x_1)_k + f(x_2)_k| + \epsilon$,
# which can be tiny: the feature has heavy tails, hence medians.)

# %%
from facenet_keras.training import siamese

fig, axes = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
for ax, kind in zip(axes, siamese.FEATURE_KINDS):
    f = np.asarray(siamese.pair_features(train[0], train[1], kind))
    ax.bar(np.arange(f.shape[1]), np.median(f[~train[2]], 0), color="tab:red", alpha=0.6, label="different people")
    ax.bar(np.arange(f.shape[1]), np.median(f[train[2]], 0), color="tab:green", alpha=0.8, label="same person")
    ax.set_ylabel(f"median {kind} feature")
    ax.legend(fontsize=8, loc="upper right")
axes[-1].set_xlabel("embedding dimension k")
plt.show()

# %% [markdown]
# ## Logistic regression on pairs
#
# `SiameseClassifier` standardises the features and fits one sigmoid unit with the log loss
# (full-batch Adam, an L2 penalty on the weights). The baseline is notebook 1's rule: distance below
# a threshold, the threshold chosen on the same training pairs.

# %%
from facenet_keras import evaluation as ev

EPOCHS = 150 if FAST else 400
dim = train[0].shape[1]
classifiers = {
    kind: siamese.SiameseClassifier(dim=dim, kind=kind).fit(*train, epochs=EPOCHS) for kind in ("abs", "chi2")
}

d_train = np.linalg.norm(train[0] - train[1], axis=1)
d_test = np.linalg.norm(test[0] - test[1], axis=1)
tau = ev.best_threshold(d_train, train[2])
prob = {kind: clf.predict_proba(test[0], test[1]) for kind, clf in classifiers.items()}
print(f"distance threshold tau = {tau:.3f} (chosen on the training pairs)")
print(
    f"test accuracy, distance <= tau : {ev.accuracy_at(d_test, test[2], tau):.3f}   AUC {ev.auc(d_test, test[2]):.4f}"
)
for kind, p in prob.items():
    acc = np.mean((p >= 0.5) == test[2])
    print(f"test accuracy, {kind:4s} P >= 0.5   : {acc:.3f}   AUC {ev.auc(1 - p, test[2]):.4f}")

fig, ax = plt.subplots(figsize=(5.5, 5))
for name, score in [("distance", d_test)] + [(f"logistic, {k}", 1 - p) for k, p in prob.items()]:
    far, tar, _ = ev.roc_curve(score, test[2])
    ax.step(far, tar, where="post", label=f"{name} (AUC {ev.auc(score, test[2]):.3f})")
ax.set_xlabel("false accept rate")
ax.set_ylabel("true accept rate")
ax.set_title("ROC on unseen people")
ax.set_xscale("symlog", linthresh=0.01)
ax.set_xlim(0, 1)
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## Calibrated probabilities
#
# A probability is *calibrated* when, among all pairs given $P(\text{same}) \approx 0.8$, about 80%
# really are the same person. The reliability diagram bins the test pairs by predicted probability
# and plots the observed fraction of same-person pairs; the diagonal is perfect calibration. For
# comparison, *Platt scaling* of the distance (a one-feature logistic regression on $d$) turns the
# threshold rule into probabilities too. Brier score and expected calibration error (ECE): lower is
# better.

# %% tags=["readme-figure"]
from sklearn.linear_model import LogisticRegression

platt = LogisticRegression(C=1e6).fit(d_train[:, None], train[2])  # (almost) unregularised
prob["distance (Platt)"] = platt.predict_proba(d_test[:, None])[:, 1]

bins = np.linspace(0, 1, 11)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
axes[0].plot([0, 1], [0, 1], "k:", label="perfect calibration")
for name, p in prob.items():
    idx = np.clip(np.digitize(p, bins) - 1, 0, 9)
    filled = [b for b in range(10) if (idx == b).any()]
    x, y = [p[idx == b].mean() for b in filled], [test[2][idx == b].mean() for b in filled]
    (line,) = axes[0].plot(
        x,
        y,
        "-",
        alpha=0.7,
        label=f"{name}: Brier {siamese.brier_score(p, test[2]):.3f}, "
        f"ECE {siamese.expected_calibration_error(p, test[2]):.3f}",
    )
    axes[0].scatter(x, y, s=[8 + 200 * np.mean(idx == b) for b in filled], color=line.get_color())
    axes[1].hist(p, bins=bins, histtype="step", lw=2, label=name)
axes[0].set_xlabel("predicted P(same person)")
axes[0].set_ylabel("observed fraction of same-person pairs")
axes[0].set_title("reliability diagram (test pairs; marker area ~ pairs in the bin)", fontsize=10)
axes[0].legend(fontsize=8)
axes[1].set_yscale("log")
axes[1].set_xlabel("predicted P(same person)")
axes[1].set_ylabel("pairs (log)")
axes[1].set_title("how confident")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Use it on a new pair
#
# With face encodings, the classifier answers a verification question with a probability. The two
# bundled public-domain portraits: Grace Hopper against a changed copy of her photo, and against
# astronaut Eileen Collins.

# %%
if SHARED is not None:
    import facenet_keras as fk
    from facenet_keras.demo import changed_copy, sample_portraits

    portraits = sample_portraits()
    grace, eileen = portraits["Grace Hopper"], portraits["Eileen Collins"]
    (g,), (g2,), (e,) = fk.encode(grace), fk.encode(changed_copy(grace)), fk.encode(eileen)
    clf = classifiers["abs"]
    for text, (a, b) in [("Grace vs her changed copy", (g, g2)), ("Grace vs Eileen", (g, e))]:
        same, p = clf(a.embedding, b.embedding)
        print(
            f"{text:26s}: P(same) = {p:.3f} -> {'same person' if same else 'different people'}"
            f"   (distance {np.linalg.norm(a.embedding - b.embedding):.3f})"
        )
else:
    print("(needs face encodings: skipped in the digits illustration)")

# %% [markdown]
# What to take away: on a strong encoder the learned weights buy little accuracy over a well-chosen
# distance threshold (the encoder was trained so that the plain distance works), but the classifier
# gives *probabilities*, and with Platt scaling even the distance rule can. A threshold on a calibrated
# probability is a threshold on the odds, which is what a risk policy is written in.
