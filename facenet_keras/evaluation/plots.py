"""Every matplotlib figure of the package; the only module that imports matplotlib.

Conventions, so new figures fit in:
* one function per figure, ``plot_<what>(data..., *, title=None) -> matplotlib.figure.Figure``;
  it takes arrays or the dicts that :mod:`facenet_keras.evaluation` returns and computes nothing
  beyond what it draws;
* figures are built with :class:`matplotlib.figure.Figure` directly, never ``pyplot``: no global
  state, no GUI, safe in threads and on headless machines (Jupyter still displays a returned Figure);
* :func:`save_figure` writes one to disk with the non-interactive Agg canvas.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["save_figure", "plot_verification", "plot_false_accept_vs_gallery_size", "plot_embedding_projection"]

GENUINE_COLOR = "tab:green"
IMPOSTOR_COLOR = "tab:red"
THRESHOLD_COLOR = "black"


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # attach the non-interactive canvas
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> str:
    """Write ``fig`` to ``path`` (format from the extension, e.g. .png/.pdf/.svg) with Agg."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)
    return path


def plot_verification(
    distances, same, threshold: float, *, title: str | None = None, far_marks: Iterable[float] = (1e-2, 1e-3)
) -> Figure:
    """ROC curve (TAR against FAR, log FAR axis) beside the two distance histograms.

    distances: (n,) Euclidean distances (NaN = failed pair, left out of the histograms and counted
    in their legend); same: (n,) bool; threshold: the decision threshold drawn on both panels
    (accept when distance <= threshold). The ROC marks the operating point at ``threshold`` and the
    TAR at each FAR in ``far_marks``.
    """
    from facenet_keras.evaluation import metrics as ev

    d = np.asarray(distances, dtype=float)
    s = np.asarray(same).astype(bool)
    far, tar, _ = ev.roc_curve(d, s)
    n_neg = int(np.count_nonzero(~s))
    failed = np.isnan(d)

    fig = _new_figure(11, 4.4)
    ax_roc, ax_hist = fig.subplots(1, 2)

    # ROC on a log FAR axis: FAR = 0 cannot be drawn, so the axis starts at the resolution 1/n
    floor = 0.5 / n_neg
    ax_roc.step(
        np.maximum(far, floor), tar, where="post", color="tab:blue", lw=1.8, label=f"ROC (AUC {ev.auc(d, s):.4f})"
    )
    op_far = np.count_nonzero(~s & (d <= threshold)) / n_neg
    op_tar = np.count_nonzero(s & (d <= threshold)) / max(int(s.sum()), 1)
    ax_roc.plot(
        [max(op_far, floor)],
        [op_tar],
        "o",
        color=THRESHOLD_COLOR,
        label=f"threshold {threshold:.3f}: TAR {op_tar:.3f} @ FAR {op_far:.3g}",
    )
    for mark in far_marks:
        if mark >= floor:
            ax_roc.axvline(mark, color="0.6", lw=0.8, ls=":")
            ax_roc.annotate(
                f"TAR@FAR={mark:g}: {ev.tar_at_far(d, s, mark):.3f}",
                (mark, 0.03),
                xycoords=ax_roc.get_xaxis_transform(),
                rotation=90,
                fontsize=8,
                color="0.3",
                ha="right",
                va="bottom",
            )
    ax_roc.set_xscale("log")
    ax_roc.set_xlim(floor, 1.0)
    # zoom on what can be seen: from a little under the TAR at the smallest drawable FAR
    low = float(tar[far <= 1.0 / n_neg].max())
    ax_roc.set_ylim(max(0.0, np.floor((low - 0.05) * 20) / 20), 1.005)
    ax_roc.set_xlabel(f"false accept rate (log; {n_neg} impostor pairs, FAR 0 drawn at {floor:.1g})")
    ax_roc.set_ylabel("true accept rate")
    ax_roc.set_title("ROC")
    ax_roc.grid(True, which="both", alpha=0.3)
    ax_roc.legend(loc="lower right", fontsize=8)

    finite = d[~failed]
    bins = np.linspace(0.0, max(float(finite.max()) if finite.size else 1.0, threshold) * 1.05, 50)
    for mask, color, name in ((s, GENUINE_COLOR, "same person"), (~s, IMPOSTOR_COLOR, "different people")):
        values = d[mask & ~failed]
        n_failed = int(np.count_nonzero(mask & failed))
        label = f"{name} ({values.size}" + (f", {n_failed} failed" if n_failed else "") + ")"
        ax_hist.hist(values, bins=bins, color=color, alpha=0.55, label=label)
    ax_hist.axvline(threshold, color=THRESHOLD_COLOR, ls="--", lw=1.5, label=f"threshold {threshold:.3f}")
    ax_hist.set_xlabel("Euclidean distance between embeddings")
    ax_hist.set_ylabel("pairs")
    ax_hist.set_title("distance distributions")
    ax_hist.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_false_accept_vs_gallery_size(
    curves: Mapping[str, dict] | Iterable[dict],
    *,
    target: float | None = None,
    title: str | None = None,
    log_y: bool = False,
) -> Figure:
    """False accept rate of unenrolled people against gallery size K, one line per threshold.

    curves: dicts returned by :func:`facenet_keras.evaluation.false_accept_vs_gallery_size`
    (keys ``sizes``, ``rate``, ``independent``, ``threshold``, ``per_comparison_far``), as a list
    or a mapping from a label to a dict. The measured curve is solid; ``1 - (1 - p)**K``
    (independent comparisons at the same per-comparison FAR p) is dashed, to show the "about K
    times p" growth. ``target``: a false accept rate drawn as a horizontal line.
    """
    items = list(curves.items()) if isinstance(curves, Mapping) else [(None, c) for c in curves]
    if not items:
        raise ValueError("no curves to plot")
    fig = _new_figure(7.2, 4.6)
    ax = fig.subplots()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    top = 0.0
    for i, (label, c) in enumerate(items):
        color = colors[i % len(colors)]
        name = label or f"threshold {c['threshold']:.3f}"
        ax.plot(
            c["sizes"],
            c["rate"],
            "-o",
            ms=3,
            color=color,
            label=f"{name}: measured (1:1 FAR {c['per_comparison_far']:.3g})",
        )
        ax.plot(c["sizes"], c["independent"], "--", color=color, alpha=0.6, label="   1-(1-p)^K")
        top = max(top, max(c["rate"]), max(c["independent"]))
    if target is not None:
        ax.axhline(target, color="0.3", lw=1, ls=":", label=f"target {target:g}")
        top = max(top, target)
    ax.set_xlabel("gallery size K (enrolled identities)")
    ax.set_ylabel("false accept rate of an unenrolled person")
    if log_y:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, min(1.0, top * 1.15) or 1.0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "1:K false accepts grow with the gallery")
    return fig


def _pca_2d(embeddings) -> np.ndarray:
    """(N, D) -> (N, 2): the embeddings centred and projected on their first two principal axes."""
    x = np.asarray(embeddings, np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def plot_embedding_projection(
    embeddings: Mapping[str, np.ndarray] | np.ndarray, labels, *, names=None, title: str | None = None
) -> Figure:
    """2-D PCA of embeddings coloured by identity, one panel per model (e.g. before / after training).

    Args:
        embeddings: an (N, D) array, or ``{"before": (N, D), "after": (N, D)}`` (one panel each,
            each projected on its own first two principal axes).
        labels: (N,) identity of each row (ints or names).
        names: optional display names for the labels (``names[label]``), used in the legend when
            there are at most 12 identities.
        title: the figure's title.
    """
    panels = embeddings if isinstance(embeddings, Mapping) else {"embeddings": embeddings}
    labels = np.asarray(labels)
    ids = list(dict.fromkeys(labels.tolist()))
    cmap = __import__("matplotlib").colormaps["tab20"]
    fig = _new_figure(4.2 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, emb) in zip(axes, panels.items()):
        xy = _pca_2d(emb)
        for k, ident in enumerate(ids):
            m = labels == ident
            label = str(names[ident]) if names is not None else str(ident)
            ax.scatter(xy[m, 0], xy[m, 1], s=14, color=cmap(k % 20), label=label, alpha=0.85)
        ax.set_title(panel)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.grid(True, alpha=0.3)
    if len(ids) <= 12:
        axes[-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return fig
