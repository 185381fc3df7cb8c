"""Image input/output and colour helpers for style transfer (the I/O edge of the package).

Images inside the package are float32 RGB arrays in [0, 1] of shape (H, W, 3). Anything a user
passes (path, PIL image, uint8 or float array, grayscale or RGBA) goes through :func:`load_image`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 100_000_000  # a larger picture is refused (a decompression bomb, or a mistake)
MIN_SIDE = 16  # each side of an input must be at least this many pixels
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image could not be read or understood; the message names it."""


def _check_size(width: int, height: int, label: str, max_pixels: int, min_side: int) -> None:
    if width * height > max_pixels:
        raise ImageReadError(
            f"{label}: {width}x{height} = {width * height:,} pixels is more than the limit of "
            f"{max_pixels:,} (possible decompression bomb)"
        )
    if min(width, height) < min_side:
        raise ImageReadError(f"{label}: {width}x{height} is too small (each side must be >= {min_side} px)")


def _read_file(path: Path, max_pixels: int, min_side: int) -> np.ndarray:
    """Open (header only), check the size, then decode: FIFOs and devices are refused unopened."""
    if not path.exists():
        raise ImageReadError(f"image not found: {path}")
    if not path.is_file():  # a FIFO would block forever, a device would stream garbage
        raise ImageReadError(f"{path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_size(img.width, img.height, str(path), max_pixels, min_side)
                img.load()
                return to_float_rgb(ImageOps.exif_transpose(img))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageReadError(
            f"{path}: more pixels than the limit of {max_pixels:,} (possible decompression bomb: {e})"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from e


def to_float_rgb(image) -> np.ndarray:
    """An array-like or PIL image -> float32 RGB in [0, 1], shape (H, W, 3)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ImageReadError(f"expected an (H, W, 3) image, got shape {a.shape}")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = a[..., :3]
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if np.issubdtype(a.dtype, np.integer):
        return (a.astype(np.float32) / np.iinfo(a.dtype).max).clip(0, 1)
    a = a.astype(np.float32)
    if a.size and a.max() > 1.0 + 1e-3:  # a float image on the 0-255 scale
        a = a / 255.0
    return a.clip(0.0, 1.0)


def load_image(source, max_size: int | None = None, *, max_pixels: int = MAX_PIXELS, min_side: int = 1) -> np.ndarray:
    """Read ``source`` (path, PIL image or array) as float32 RGB [0, 1], longest side <= max_size.

    A path must be a regular file (FIFOs and devices are refused before opening) whose header says at
    most ``max_pixels`` pixels and at least ``min_side`` per side (the CLI uses :data:`MIN_SIDE`);
    EXIF orientation is applied. Raises :class:`ImageReadError` with a one-line message otherwise.
    """
    if isinstance(source, (str, os.PathLike)):
        image = _read_file(Path(source), max_pixels, min_side)
    else:
        image = to_float_rgb(source)
        _check_size(image.shape[1], image.shape[0], "<image>", max_pixels, min_side)
    if max_size is not None:
        image = resize_longest(image, max_size)
    return image


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a float RGB image (H, W, 3) -> (height, width, 3), values kept in [0, 1].
    A uint8 image gives what its :func:`to_float_rgb` would, read a channel at a time, so a large
    photo is never copied whole as floats."""
    if image.shape[:2] == (height, width):
        return to_float_rgb(image) if image.dtype == np.uint8 else image.astype(np.float32)
    channels = [
        Image.fromarray(_float_channel(image, c), mode="F").resize((width, height), Image.BICUBIC)
        for c in range(image.shape[-1])
    ]
    return np.stack([np.asarray(c) for c in channels], axis=-1).clip(0, 1).astype(np.float32)


def _float_channel(image: np.ndarray, c: int) -> np.ndarray:
    """Channel ``c`` as float32, a uint8 one scaled to [0, 1] as :func:`to_float_rgb` scales it."""
    channel = image[..., c].astype(np.float32)
    return channel / 255.0 if image.dtype == np.uint8 else channel


def scaled_shape(shape: tuple[int, int], longest: int) -> tuple[int, int]:
    """(H, W) scaled so that max(H, W) == longest, aspect ratio kept, each side >= 1."""
    h, w = shape[:2]
    s = longest / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize_longest(image: np.ndarray, longest: int) -> np.ndarray:
    return resize(image, *scaled_shape(image.shape, longest))


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a float [0, 1] (or uint8) RGB image atomically; the format follows the file's extension.

    The picture goes to a temporary file in the same folder, then is renamed over ``path``: a
    crash never leaves half a file.
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageReadError(f"{path}: unknown image extension {path.suffix!r}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(to_uint8(image)).save(f, format=fmt)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a picture is not private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a, 0, 1) * 255.0 + 0.5).astype(np.uint8)


# YIQ (NTSC): Y is the luminance used for colour-preserving transfer (Gatys et al. 2016).
_RGB2YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], np.float32
)
_YIQ2RGB = np.linalg.inv(_RGB2YIQ).astype(np.float32)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) @ _RGB2YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    return (np.asarray(image, np.float32) @ _YIQ2RGB.T).clip(0, 1)


def luminance(image: np.ndarray) -> np.ndarray:
    """Y channel of an RGB [0, 1] image, shape (H, W)."""
    return rgb_to_yiq(image)[..., 0]


def gray3(y: np.ndarray) -> np.ndarray:
    """A luminance map (H, W) as a 3-channel grey image, clipped to [0, 1]."""
    return np.repeat(np.clip(y, 0, 1)[..., None], 3, axis=-1).astype(np.float32)


def match_luminance(y_style: np.ndarray, y_content: np.ndarray) -> np.ndarray:
    """Shift and scale the style luminance to the content's mean and standard deviation."""
    s_mu, s_sd = float(y_style.mean()), float(y_style.std()) + 1e-6
    return (y_style - s_mu) * (float(y_content.std()) / s_sd) + float(y_content.mean())


def recombine_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylised image's luminance with the content's chrominance (I, Q): colours kept."""
    if content.shape[:2] != stylized.shape[:2]:
        content = resize(content, *stylized.shape[:2])
    yiq = rgb_to_yiq(content)
    yiq[..., 0] = luminance(stylized)
    return yiq_to_rgb(yiq)
