# %% [markdown]
# # 4. Neural style transfer
#
# Gatys et al. (2015): paint a **content** image $C$ in the style of a **style** image $S$ by
# optimising the *pixels* of a generated image $G$ so that
#
# * its deep VGG activations match those of $C$ (content), and
# * the correlations between its VGG channels (Gram matrices) match those of $S$ (style).
#
# The network itself is never trained: VGG19, pretrained on ImageNet, is a fixed feature extractor.
# This notebook walks through what VGG layers see, the three costs, the optimisation, and the
# variants (colour preservation, multi-scale, the one-pass network).
#
# **Data.** The content is scikit-image's cat (public domain). The style is Van Gogh's *The Starry
# Night* (public domain) from the project's development data in `../shared/data` when it sits beside
# the repository; without it the notebook paints with the Hubble deep field (scikit-image) instead.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from facenet_keras.demo import notebook_setup

FAST, SHARED = notebook_setup()  # FAST: the test suite's small sizes; SHARED: ../shared/data or None

# %%
from skimage import data as skdata

import style_transfer as st

SIZE = 96 if FAST else 192  # longest side of the generated image, pixels
STEPS = 12 if FAST else 150  # optimisation steps per run (a few minutes on a CPU)

# Public-domain pictures only: scikit-image's cat, and Van Gogh's painting from ../shared/data when present.
content, content_name = st.load_image(skdata.chelsea()), "Chelsea the cat"
if SHARED is not None:
    style, style_name = st.load_image(SHARED / "style" / "style" / "starry_night.jpg"), "Van Gogh, The Starry Night"
else:
    style, style_name = st.load_image(skdata.hubble_deep_field()), "Hubble deep field"

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, img, title in zip(axes, (content, style), (f"content: {content_name}", f"style: {style_name}")):
    ax.imshow(img)
    ax.set_title(title)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## What VGG layers see
#
# VGG19 is 16 convolutional layers in five blocks. Following Zeiler & Fergus, for a few *units*
# (channels) of a layer we find the image patches that activate each unit most: shallow units
# respond to colours and edges, deeper ones to textures and object parts. Each patch is the unit's
# receptive field (bigger in deeper layers).

# %%
from style_transfer import visualize

extractor_vis = st.build_feature_extractor(["block1_conv2", "block3_conv1", "block5_conv1"])
patch_sources = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket(), content, style]
if not FAST:
    patch_sources += [
        skdata.hubble_deep_field(),
        skdata.retina(),
        skdata.immunohistochemistry(),
        np.repeat(skdata.camera()[..., None], 3, -1),
    ]
for layer, units in [("block1_conv2", [3, 10, 25]), ("block3_conv1", [5, 40, 90]), ("block5_conv1", [7, 60, 200])]:
    found = visualize.top_activating_patches(
        patch_sources, layer, units, k=4 if FAST else 9, size=160 if FAST else 224, extractor=extractor_vis
    )
    visualize.plot_top_patches(found, layer, cols=2 if FAST else 3)
    plt.show()

# %%
maps = visualize.feature_maps(content, "block3_conv1", size=160 if FAST else 224, extractor=extractor_vis)
visualize.plot_feature_maps(maps, n=16, title=f"block3_conv1 activations of the content image {maps.shape}")
plt.show()

# %% [markdown]
# ## Content cost
#
# Pick one layer $l$ (here `block4_conv2`) with activations $a^{[l]} \in \mathbb{R}^{n_H \times n_W
# \times n_C}$. The content cost is the (normalised) squared difference of activations:
#
# $$J_{content}(C, G) = \frac{1}{4\, n_H n_W n_C} \sum (a^{(C)} - a^{(G)})^2 .$$
#
# A deep layer keeps *what* is where (objects, layout) but not exact pixels.

# %%
from style_transfer import costs

layers = [costs.CONTENT_LAYER] + [name for name, _ in costs.STYLE_LAYERS]
extractor = st.build_feature_extractor(layers)  # one VGG19 that stops at the deepest layer needed
print("weights:", extractor.weights_source.describe())

C, S = st.images.resize_longest(content, SIZE), st.images.resize_longest(style, SIZE)
noisy = np.clip(C + np.random.default_rng(0).uniform(-0.25, 0.25, C.shape), 0, 1).astype("float32")
S_as_C = st.images.resize(style, *C.shape[:2])  # the content cost compares same-size maps
feats = {
    name: extractor(x[None], training=False)
    for name, x in [("C", C), ("S", S), ("noisy C", noisy), ("S at C's size", S_as_C)]
}
for other in ("noisy C", "S at C's size"):
    J = costs.compute_content_cost(feats["C"][costs.CONTENT_LAYER], feats[other][costs.CONTENT_LAYER])
    print(f"J_content(C, {other:14s}) = {float(J):10.2f}")

# %% [markdown]
# ## Gram matrix and style cost
#
# Unroll a layer's activation to $A \in \mathbb{R}^{n_C \times n_H n_W}$; the **Gram matrix**
# $G = A A^T$ holds, for every pair of channels, how much they fire *together*, wherever in the image.
# Position is averaged away: what remains is texture, colour, brush strokes. The layer style cost and
# the style cost over several layers with weights $\lambda_l$:
#
# $$J^{[l]}_{style}(S, G) = \frac{1}{4 n_C^2 (n_H n_W)^2} \sum_{i,j} (G^{(S)}_{ij} - G^{(G)}_{ij})^2,
# \qquad J_{style} = \sum_l \lambda_l J^{[l]}_{style}.$$

# %%
layer = "block2_conv1"


def unrolled(a):
    """A layer's activation (1, n_H, n_W, n_C) unrolled to (n_C, n_H*n_W)."""
    return np.asarray(a[0]).reshape(-1, a.shape[-1]).T


grams = {k: np.asarray(costs.gram_matrix(unrolled(feats[k][layer]))) for k in ("C", "S")}

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (k, g) in zip(axes, grams.items()):
    n_hw = feats[k][layer].shape[1] * feats[k][layer].shape[2]  # normalise by n_H n_W
    ax.imshow(np.sqrt(g[:48, :48] / n_hw), cmap="magma")  # first 48 channels
    ax.set_title(f"{k}: Gram matrix at {layer}\n(first 48 of {g.shape[0]} channels, sqrt)", fontsize=10)
    ax.axis("off")
plt.show()

per_layer = {
    name: float(costs.compute_layer_style_cost(feats["S"][name], feats["C"][name])) for name, _ in costs.STYLE_LAYERS
}
for (name, weight), J_l in zip(costs.STYLE_LAYERS, per_layer.values()):
    print(f"compute_layer_style_cost(S, C) at {name}: {J_l:10.4g}   x lambda = {weight}")
J_style = costs.compute_style_cost(feats["S"], feats["C"])
print(
    f"compute_style_cost(S, C) = sum of lambda x layer cost = {float(J_style):.4g} "
    f"(check: {sum(w * per_layer[n] for n, w in costs.STYLE_LAYERS):.4g}); "
    f"J_style(S, S) = {float(costs.compute_style_cost(feats['S'], feats['S'])):.4g}"
)

# %% [markdown]
# ## The weights $\alpha$ and $\beta$
#
# $J(G) = \alpha J_{content} + \beta J_{style}$ is `total_cost(J_content, J_style, alpha=10, beta=40)`,
# with the course's weights as its defaults. What matters is not the numbers but the **balance**:
# how large $\beta J_{style}$ is next to $\alpha J_{content}$ while the image is being painted. That
# depends on the scale of the activations, which depends on how pixels enter VGG: the course feeds
# its own VGG pixels in one range, this package feeds Keras's VGG19 0-255 pixels minus the ImageNet
# mean, which makes activations far larger, and the Gram matrices (products of activations) larger
# again by that factor squared. So `st.stylize` uses its own default weights, chosen (see the README)
# so that the two terms pull about as hard as the course's do in the course's setting. The cell
# below reads the actual defaults from the code and compares the two balances on the starting image.

# %%
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
    print(
        f"{label:8s} alpha={alpha:<8g} beta={beta:<8g}: total_cost = {float(J):.4g}; "
        f"style term / content term = {beta * float(J_s) / (alpha * float(J_c)):.3g}"
    )
print(
    "a ratio above 1: the style term pulls harder on this starting image (the content plus noise);"
    " below 1: the content term does"
)

# %% [markdown]
# ## Total cost and optimising the pixels
#
# $$J(G) = \alpha J_{content}(C, G) + \beta J_{style}(S, G) \;(+\; \gamma J_{TV}(G)),$$
#
# where the optional total-variation term keeps neighbouring pixels alike (less noise). Start from
# the content image plus noise and follow the gradient of $J$ with respect to the *pixels* of $G$
# (Adam). `st.stylize` does exactly this; its `callback` lets us keep intermediate images.

# %%
snapshots = {}
every = max(1, STEPS // 4)


def keep(step, image, cost):
    if step == 1 or step % every == 0:
        snapshots[step] = image.copy()


result = st.stylize(C, S, size=SIZE, steps=STEPS, schedule="single", extractor=extractor, callback=keep, progress=False)
print(
    f"{STEPS} steps at {SIZE}px in {result.seconds:.1f} s; final costs: "
    + ", ".join(f"{k} {v:.4g}" for k, v in result.costs.items())
)

fig, axes = plt.subplots(1, len(snapshots), figsize=(3 * len(snapshots), 3.2))
for ax, (step, img) in zip(np.atleast_1d(axes), sorted(snapshots.items())):
    ax.imshow(img)
    ax.set_title(f"step {step}")
    ax.axis("off")
fig.suptitle("intermediate images")
plt.show()

hist = result.history
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy([h["step"] for h in hist], [h["total"] for h in hist], label="total J (weighted)")
ax.set_xlabel("step")
ax.set_ylabel("cost")
ax.legend()
plt.show()

# %% [markdown]
# ## Colour preservation
#
# A plain transfer repaints the content with the style's palette. Gatys et al. (2016) transfer only
# the *luminance*: optimise on grey images, then put the content's own colours back (YIQ colour
# space). The town keeps its colours, the strokes come from the painting.

# %%
kept = st.stylize(
    C, S, size=SIZE, steps=STEPS, schedule="single", extractor=extractor, preserve_colors=True, progress=False
)

# %% [markdown]
# ## Multi-scale (coarse to fine)
#
# Optimising at full size is slow and the strokes end up small. The default schedule spends most
# steps at a quarter and a half of the size (each step 16x and 4x cheaper) and finishes with a few
# steps at full size: large-scale structure first, detail last.

# %%
print("schedule (longest side, steps):", st.multiscale_schedule(SIZE * 2, STEPS * 2, min_size=32))
multi = st.stylize(
    C,
    S,
    size=SIZE * 2,
    steps=STEPS * 2,
    schedule=st.multiscale_schedule(SIZE * 2, STEPS * 2, min_size=32),
    extractor=extractor,
    progress=False,
)
print(f"multi-scale to {SIZE * 2}px in {multi.seconds:.1f} s")

# %% tags=["readme-figure"]
panels = [
    (C, f"content: {content_name}"),
    (S, f"style: {style_name}"),
    (result.image, "style transfer"),
    (kept.image, "colours preserved"),
    (multi.image, "multi-scale, 2x size"),
]
fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4))
for ax, (img, title) in zip(axes, panels):
    ax.imshow(np.clip(img, 0, 1))
    ax.set_title(title, fontsize=10)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The fast path: one forward pass
#
# Optimising pixels takes minutes per image. Magenta's *arbitrary image stylization* networks
# (Ghiasi et al., 2017) were trained to predict the result in **one** forward pass for any style: a
# style network turns the painting into a style vector of 100 numbers, a transformer network paints
# the photo with it. `st.stylize_fast` runs both, rebuilt in Keras from weights that come with an
# installed package: offline, nothing is downloaded (`style-transfer --fast` in a shell).
# `strength` slides the style vector from the photo's own (0) to the painting's (1).

# %%
import time

t0 = time.perf_counter()
fast = {strength: st.stylize_fast(content, style, size=SIZE * 2, strength=strength) for strength in (0.5, 1.0)}
print(f"two one-pass stylisations at {SIZE * 2}px in {time.perf_counter() - t0:.1f} s (building the networks included)")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, (img, title) in zip(axes, [(content, "content")] + [(v, f"one pass, strength {k}") for k, v in fast.items()]):
    ax.imshow(img)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
plt.tight_layout()
plt.show()
