"""Draw recognition results on a photo: a box and a label per face (PIL only, no matplotlib)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KNOWN, UNKNOWN, GATED = (40, 200, 60), (230, 50, 40), (128, 128, 128)


def annotate(image: np.ndarray, boxes, labels, known=None, gated=None) -> Image.Image:
    """A copy of ``image`` (H, W, 3) uint8 with each box (x, y, w, h) drawn and labelled.

    ``known[i]`` picks the colour (green for recognised, red for not); by default a label is
    "known" unless it starts with "?". ``gated[i]`` true (a face the quality gate turned away,
    never named) draws it grey whatever ``known`` says.
    """
    out = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    try:
        font = ImageFont.load_default(size=max(12, round(max(out.size) / 45)))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    labels = list(labels)
    known = list(known) if known is not None else [not str(lab).startswith("?") for lab in labels]
    gated = list(gated) if gated is not None else [False] * len(labels)
    for (x, y, w, h), label, ok, grey in zip(boxes, labels, known, gated):
        colour = GATED if grey else KNOWN if ok else UNKNOWN
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        ty = y - (bottom - top) - 2 * width if y - (bottom - top) - 2 * width >= 0 else y + h
        draw.rectangle([x, ty, x + (right - left) + 2 * width, ty + (bottom - top) + 2 * width], fill=colour)
        draw.text((x + width - left, ty + width - top), label, fill=(255, 255, 255), font=font)
    return out
