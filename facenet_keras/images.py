"""Anything a user passes as a photo -> an (H, W, 3) uint8 RGB array, or a clear :class:`ImageError`.

Accepted inputs: a path (``str`` / :class:`os.PathLike`), the encoded bytes of a file
(``bytes`` / ``bytearray`` / ``memoryview``), a binary file object, a :class:`PIL.Image.Image`, or a
numpy array (``HxW`` grey, ``HxWx1``, ``HxWx3`` RGB, ``HxWx4`` RGBA) of dtype uint8, uint16
(0..65535), another integer type holding 0..255, bool, or float in [0, 1].

Conversions, so every caller sees the same kind of pixels:
- the EXIF ``Orientation`` tag is applied (phone photos come out upright);
- grey, palette, CMYK, 16-bit, 1-bit and other PIL modes become 8-bit RGB; 16-bit values are
  scaled by 255/65535 (rounded), never clipped;
- an alpha channel is **composited on white** (a transparent background reads as white paper, which is
  what a viewer shows and what detectors are used to; dropping alpha would expose whatever
  undefined colour the transparent pixels happen to hold);
- the first frame of an animated GIF / multi-page TIFF is used.

Refused, with an :class:`ImageError` (a ``ValueError``) whose message names the source: data that is
not an image, a truncated or corrupt file (PIL's ``LOAD_TRUNCATED_IMAGES`` is never switched on, so
no grey half-images; a JPEG whose image data is too short for its declared size, which libjpeg fills
with grey silently, is refused from its markers, see :mod:`facenet_keras.jpeg_data`), a picture
larger than ``max_pixels`` (decompression bombs; checked from the header before any pixel is
decoded), or smaller than ``min_side`` pixels on a side.
A missing file raises :class:`FileNotFoundError`.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "list_identities",
    "ImageError",
    "load_image",
    "image_size",
    "iter_image_files",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MIN_SIDE",
]

#: Largest picture accepted, in pixels (width * height): 100 megapixels, 300 MB as RGB uint8.
MAX_PIXELS = 100_000_000
#: Smallest side accepted, in pixels: below this no face detector or encoder can do anything useful.
MIN_SIDE = 16
#: File name endings :func:`iter_image_files` treats as photos (lower case).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"}
)

_WHITE = 255.0
# Pixels converted at a time (a strip of whole rows): bounds the temporary copies a conversion makes.
_STRIP_PIXELS = 1 << 20


class ImageError(ValueError):
    """The input is not a usable image; the message names the file (or kind of input) and why."""


def load_image(
    src,
    *,
    name: str | None = None,
    max_pixels: int | None = None,
    min_side: int | None = None,
) -> np.ndarray:
    """Read ``src`` into an upright ``(H, W, 3)`` uint8 RGB array.

    Args:
        src: a path, encoded bytes, a binary file object, a PIL image or a numpy array (see the module
            docstring for the accepted shapes and dtypes).
        name: how to call the input in error messages (default: the path, or ``<bytes>``,
            ``<PIL image>``, ``<array>``).
        max_pixels: refuse pictures with more pixels than this (default :data:`MAX_PIXELS`).
        min_side: refuse pictures whose width or height is below this (default :data:`MIN_SIDE`).

    Returns:
        A new C-contiguous ``(H, W, 3)`` uint8 array (never a view of the caller's array).

    Raises:
        ImageError: not an image, truncated/corrupt, too large, too small, or an unsupported array.
        FileNotFoundError: ``src`` is a path that does not exist.
    """
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    min_side = MIN_SIDE if min_side is None else int(min_side)
    if max_pixels <= 0 or min_side < 1:
        raise ValueError(f"max_pixels must be > 0 and min_side >= 1, got {max_pixels}, {min_side}")

    if isinstance(src, np.ndarray):
        label = name or "<array>"
        rgb = _array_to_rgb(src, label)
    elif isinstance(src, Image.Image):
        label = name or "<PIL image>"
        _check_size(src.size, label, max_pixels, min_side)
        rgb = _pil_to_rgb(src, label)
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        label = name or str(path)
        if not path.is_file():
            if path.exists():
                raise ImageError(f"{label}: not a regular file")
            raise FileNotFoundError(f"{label}: no such file")
        with open(path, "rb") as fh:
            rgb = _decode(fh, label, max_pixels, min_side)
    elif isinstance(src, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        rgb = _decode(io.BytesIO(bytes(src)), label, max_pixels, min_side)
    elif hasattr(src, "read"):
        label = name or getattr(src, "name", None) or "<file object>"
        rgb = _decode(src, str(label), max_pixels, min_side)
    else:
        raise TypeError(
            f"load_image() takes a path, bytes, a file object, a PIL image or a numpy array, not {type(src).__name__}"
        )
    _check_size((rgb.shape[1], rgb.shape[0]), label, max_pixels, min_side)
    return np.ascontiguousarray(rgb)


def image_size(
    src, *, name: str | None = None, max_pixels: int | None = None, min_side: int | None = None
) -> tuple[int, int]:
    """The (width, height) :func:`load_image` would return for ``src`` (upright, EXIF applied), read
    from the header with no pixel decoded; the same refusals for size and truncated data. Lets a
    caller check a whole batch (and what it would cost in memory) before decoding any of it."""
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    min_side = MIN_SIDE if min_side is None else int(min_side)
    if isinstance(src, np.ndarray):
        return int(src.shape[1]), int(src.shape[0])
    if isinstance(src, Image.Image):
        label, im = name or "<PIL image>", src
        _check_size(im.size, label, max_pixels, min_side)
        return _upright(im)
    fh: IO[bytes]
    if isinstance(src, (bytes, bytearray, memoryview)):
        label, fh = name or "<bytes>", io.BytesIO(bytes(src))
    elif isinstance(src, (str, os.PathLike)):
        label = name or str(src)
        if not Path(src).is_file():
            raise FileNotFoundError(f"{label}: no such file")
        fh = open(src, "rb")
    else:
        raise TypeError(f"image_size() takes a path, bytes, a PIL image or a numpy array, not {type(src).__name__}")
    with fh, _opened(fh, label, max_pixels, min_side) as im:
        return _upright(im)


def _upright(im: Image.Image) -> tuple[int, int]:
    """(width, height) once the EXIF orientation is applied (5-8 turn the picture a quarter)."""
    try:
        turned = im.getexif().get(0x0112) in (5, 6, 7, 8)
    except Exception:  # unreadable EXIF: load_image refuses it when decoding
        turned = False
    return (im.size[1], im.size[0]) if turned else (im.size[0], im.size[1])


def iter_image_files(folder, *, recursive: bool = True) -> Iterator[Path]:
    """Yield the image files under ``folder`` (by extension, see :data:`IMAGE_EXTENSIONS`), sorted.

    Hidden files and folders (names starting with '.') are skipped. Nothing is opened here: a file
    with an image extension that is not an image fails later, in :func:`load_image`.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    pattern = "**/*" if recursive else "*"
    for path in sorted(root.glob(pattern)):
        rel = path.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            yield path


# --------------------------------------------------------------------------------------------------
# decoding


def _check_size(size, label: str, max_pixels: int, min_side: int) -> None:
    width, height = int(size[0]), int(size[1])
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: {width}x{height} = {width * height:,} pixels is more than the limit of "
            f"{max_pixels:,} (possible decompression bomb; pass max_pixels= to allow it)"
        )
    if min(width, height) < min_side:
        raise ImageError(f"{label}: {width}x{height} is too small (each side must be >= {min_side} px)")


def _decode(fh, label: str, max_pixels: int, min_side: int) -> np.ndarray:
    """Open (header only), check the size and the data's length, then decode fully."""
    with _opened(fh, label, max_pixels, min_side) as im:
        try:
            im.load()
            return _pil_to_rgb(im, label)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{label}: corrupt or truncated image ({exc})") from exc


def _opened(fh, label: str, max_pixels: int, min_side: int) -> Image.Image:
    """The image with only its header read, its size within the limits and (for a JPEG) enough image
    data for that size; every PIL failure mapped to ImageError."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone switched it on globally: refuse to return garbage
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; facenet_keras needs it False")
    try:
        with warnings.catch_warnings():
            # Our own pixel cap replaces PIL's warning; PIL's hard limit (2 * MAX_IMAGE_PIXELS) is
            # lifted only when the caller explicitly allows more than it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil_limit = Image.MAX_IMAGE_PIXELS
            if pil_limit is not None and max_pixels > 2 * pil_limit:
                Image.MAX_IMAGE_PIXELS = None
            try:
                im = Image.open(fh)
            finally:
                Image.MAX_IMAGE_PIXELS = pil_limit
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{label}: more pixels than the limit of {max_pixels:,} (possible decompression bomb: {exc})"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image (unrecognised file format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{label}: corrupt or truncated image ({exc})") from exc
    try:
        _check_size(im.size, label, max_pixels, min_side)
        if im.format in ("JPEG", "MPO"):
            _check_jpeg_data(im.fp, label, im.size)
    except BaseException:
        im.close()
        raise
    return im


def _check_jpeg_data(fp, label: str, size) -> None:
    """Refuse a JPEG whose image data is too short for its declared size (libjpeg would fill the
    rest with grey, silently); reads the file's bytes, decodes nothing."""
    from facenet_keras.jpeg_data import shortest_scan

    where = fp.tell()
    fp.seek(0)
    found = shortest_scan(fp.read())
    fp.seek(where)
    if found is not None and found[0] < found[1]:
        raise ImageError(
            f"{label}: truncated image ({found[0]:,} bytes of image data cannot hold "
            f"{size[0]}x{size[1]} pixels; at least {found[1]:,} needed)"
        )


def _pil_to_rgb(im: Image.Image, label: str) -> np.ndarray:
    """PIL image (any mode) -> upright RGB uint8 array, alpha composited on white.

    Converted a strip of rows at a time into the one output array, so a large photo costs its
    decoded form plus the output, not the several full-size copies a whole-image conversion makes.
    """
    try:
        orientation = im.getexif().get(0x0112, 1)
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            im = ImageOps.exif_transpose(im)  # a turned copy, only when the tag asks for one
    except Exception as exc:  # malformed EXIF: refuse rather than guess the orientation
        raise ImageError(f"{label}: unreadable EXIF orientation ({exc})") from exc
    width, height = im.size
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = _strip_to_rgb(im.crop((0, top, width, bottom)), label)
    return out


def _strip_to_rgb(im: Image.Image, label: str) -> np.ndarray:
    """A few rows of a PIL image (any mode) -> RGB uint8, alpha composited on white."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit and 32-bit single-channel: numpy does the scaling exactly.
        return _array_to_rgb(np.asarray(im), label, pil_mode=mode)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        im = im.convert("RGBA")
        return _composite_on_white(np.asarray(im, dtype=np.float32))
    if mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(im, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# arrays


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) float in 0..255 -> (H, W, 3) uint8, alpha-blended over white."""
    alpha = rgba[..., 3:4] / 255.0
    out = rgba[..., :3] * alpha + _WHITE * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_unit_range_255(a: np.ndarray, label: str, pil_mode: str | None) -> np.ndarray:
    """Any supported dtype -> float32 values in 0..255 (not yet rounded)."""
    if a.dtype == np.uint8:
        return a.astype(np.float32)
    if a.dtype == np.bool_:
        return a.astype(np.float32) * 255.0
    if a.dtype == np.uint16 or (pil_mode is not None and pil_mode.startswith("I")):
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageError(f"{label}: integer pixels outside 0..65535")
        return (a * (255.0 / 65535.0)).astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ImageError(
                f"{label}: {a.dtype} pixels must lie in 0..255 (got {a.min()}..{a.max()}); pass uint16 for 16-bit data"
            )
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ImageError(f"{label}: float pixels contain NaN or infinity")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise ImageError(
                f"{label}: float pixels must lie in [0, 1] (got {lo:.4g}..{hi:.4g}); pass uint8 for 0..255 data"
            )
        return np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0
    raise ImageError(f"{label}: unsupported pixel dtype {a.dtype}")


def _array_to_rgb(a: np.ndarray, label: str, pil_mode: str | None = None) -> np.ndarray:
    """numpy array (HxW, HxWx1, HxWx3, HxWx4) -> (H, W, 3) uint8 RGB (a copy)."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        channels = 1
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        channels = a.shape[2]
    else:
        raise ImageError(f"{label}: array of shape {a.shape} is not an image (expected HxW, HxWx1, HxWx3 or HxWx4)")
    if a.dtype == np.uint8 and channels == 3:
        return np.array(a, dtype=np.uint8, copy=True)
    values = _to_unit_range_255(a, label, pil_mode)
    if channels == 1:
        values = np.repeat(values[..., None], 3, axis=2)
    elif channels == 4:
        return _composite_on_white(values)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def list_identities(root) -> dict[str, list[Path]]:
    """``{person: [photo paths]}`` for ``ROOT/<person>/<photo>``: people sorted by name, each one's
    photos in natural order (``2.jpg`` before ``10.jpg``, so "the first photo" means what a person
    reads); people without photos skipped, files directly in ROOT ignored."""

    def natural(path: Path):
        return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected ROOT/<person>/<photo>)")
    out: dict[str, list[Path]] = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(iter_image_files(person, recursive=False), key=natural)
        if photos:
            out[person.name] = photos
    if not out:
        raise ValueError(f"{root}: no identity folders with photos (expected ROOT/<person>/<photo>)")
    return out
