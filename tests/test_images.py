"""load_image: every kind of input becomes an upright (H, W, 3) uint8 RGB array, or an ImageError
that names the file."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from facenet_keras.images import ImageError, image_size, iter_image_files, load_image


def _pattern(h=48, w=64) -> np.ndarray:
    """An asymmetric colour picture: any flip or rotation changes it."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 40)], axis=-1).astype(np.uint8)
    img[: h // 3, : w // 4] = (255, 0, 0)  # red block top-left
    return img


def _png_bytes(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (8-bit grey) with one tiny, incomplete IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------- refusals


def test_text_file_is_refused_with_its_name(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n")
    with pytest.raises(ImageError, match="notes.jpg.*not an image"):
        load_image(p)


def test_truncated_jpeg_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_pattern(200, 300)).save(buf, "JPEG", quality=95)
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.jpg.*truncated"):
        load_image(p)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    # the same bytes, whole, load fine
    assert load_image(buf.getvalue()).shape == (200, 300, 3)


def _short_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose header claims width x height but whose image data stops after a few dozen bytes,
    closed with an end-of-image marker: libjpeg decodes it as flat grey, without an error."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, "JPEG")
    data = buf.getvalue()
    start = data.index(b"\xff\xda")  # the scan's header; its image data follows
    return data[: start + 80] + b"\xff\xd9"


def test_jpeg_with_too_little_image_data_is_refused_not_decoded_grey(tmp_path):
    short = _short_jpeg(5000, 5000)
    assert len(short) < 1000
    with pytest.raises(ImageError, match="short.jpg: truncated image.*5000x5000"):
        image_size(short, name="short.jpg", max_pixels=25_000_000)
    p = tmp_path / "short.jpg"
    p.write_bytes(short)
    with pytest.raises(ImageError, match="short.jpg: truncated image"):
        load_image(p, max_pixels=25_000_000)
    # a picture cut to a quarter of its file, closed again: refused too
    buf = io.BytesIO()
    Image.fromarray(_pattern(600, 800)).save(buf, "JPEG")
    whole = buf.getvalue()
    with pytest.raises(ImageError, match="truncated"):
        load_image(whole[: len(whole) // 4] + b"\xff\xd9")
    # the whole files load, progressive and optimised ones (the tightest data) included
    for options in ({}, {"progressive": True}, {"optimize": True}):
        buf = io.BytesIO()
        Image.new("RGB", (640, 480), (90, 90, 90)).save(buf, "JPEG", **options)
        assert load_image(buf.getvalue()).shape == (480, 640, 3)
    assert load_image(whole).shape == (600, 800, 3)


def test_image_size_reads_the_header_only(tmp_path):
    # a 5000 x 4000 PNG whose pixel data is missing: its size is known, decoding it would fail
    claim = _png_bytes(5000, 4000)
    assert image_size(claim, max_pixels=25_000_000) == (5000, 4000)
    with pytest.raises(ImageError, match="truncated"):
        load_image(claim, max_pixels=25_000_000)
    with pytest.raises(ImageError, match="20,000,000 pixels is more than the limit of 1,000,000"):
        image_size(claim, max_pixels=1_000_000)
    # upright: a phone photo stored on its side reports the size load_image returns
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "side.jpg"
    Image.fromarray(_pattern(60, 90)).save(p, "JPEG", exif=exif.tobytes())
    assert image_size(p) == (60, 90) and load_image(p).shape == (90, 60, 3)
    assert image_size(_pattern(60, 90)) == (90, 60)


def test_tiny_image_is_refused(tmp_path):
    p = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(p)
    with pytest.raises(ImageError, match="dot.png.*1x1.*too small"):
        load_image(p)
    with pytest.raises(ImageError, match="too small"):
        load_image(np.zeros((15, 400, 3), np.uint8))
    assert load_image(np.zeros((16, 16, 3), np.uint8)).shape == (16, 16, 3)
    assert load_image(np.zeros((8, 8, 3), np.uint8), min_side=8).shape == (8, 8, 3)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    # 12000 x 10000 = 120 Mpx: above our 100 Mpx cap, below PIL's own hard limit
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_bytes(12000, 10000))
    assert p.stat().st_size < 200
    with pytest.raises(ImageError, match="bomb.png.*120,000,000 pixels.*limit"):
        load_image(p)
    # 100000 x 100000: PIL refuses it itself; still our error type, naming the file
    p2 = tmp_path / "huge.png"
    p2.write_bytes(_png_bytes(100_000, 100_000))
    with pytest.raises(ImageError, match="huge.png.*decompression bomb"):
        load_image(p2)


def test_pixel_cap_is_configurable():
    img = _pattern(100, 100)
    with pytest.raises(ImageError, match="10,000 pixels"):
        load_image(img, max_pixels=5000)
    assert load_image(img, max_pixels=10_000).shape == (100, 100, 3)


def test_missing_file_and_wrong_types():
    with pytest.raises(FileNotFoundError, match="no_such.jpg"):
        load_image("/nonexistent/no_such.jpg")
    with pytest.raises(TypeError, match="not int"):
        load_image(42)
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((32, 32, 2), np.uint8))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(np.full((32, 32, 3), 2.0))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((32, 32, 3), np.nan))
    with pytest.raises(ImageError, match="my-array.*0..255"):
        load_image(np.full((32, 32, 3), 300, np.int32), name="my-array")


# ------------------------------------------------------------------------------------- conversions


def test_exif_orientation_is_applied(tmp_path):
    upright = _pattern(60, 90)
    # stored rotated 90 degrees counter-clockwise, tagged "rotate 90 CW to display" (Orientation 6)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "phone.jpg"
    stored.save(p, "JPEG", quality=98, exif=exif.tobytes())
    assert Image.open(p).size == (60, 90)  # as stored: portrait
    out = load_image(p)
    assert out.shape == upright.shape  # as displayed: landscape
    assert np.abs(out.astype(int) - upright).mean() < 3.0
    assert out[:10, :10, 0].mean() > 200 and out[:10, :10, 1].mean() < 60  # red block back top-left


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64 * 32, dtype=np.uint32) * 31).reshape(32, 64).astype(np.uint16)  # 0..63457
    p = tmp_path / "deep.png"
    Image.fromarray(ramp).save(p)
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # really 16-bit on disk
    out = load_image(p)
    expected = np.rint(ramp / 65535.0 * 255.0).astype(np.uint8)
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert out.max() > 240 and out.min() == 0  # the full range survives
    np.testing.assert_array_equal(load_image(ramp), out)  # a uint16 array gives the same


def test_grayscale_crop_from_shared_data(shared_data):
    grey = next(p for p in sorted((shared_data / "faces").glob("*/*.png")) if Image.open(p).mode == "L")
    out = load_image(grey)
    src = np.asarray(Image.open(grey))
    assert out.shape == src.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], src)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:, :10, 3] = 255  # left half opaque red
    rgba[:, 10:, 3] = 0  # right half transparent (its colour must not leak)
    rgba[0, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    out = load_image(Image.fromarray(rgba, "RGBA"))
    assert tuple(out[5, 5]) == (200, 10, 10)
    assert tuple(out[5, 15]) == (255, 255, 255)
    assert np.all(np.abs(out[0, 0].astype(int) - 127) <= 1)
    np.testing.assert_array_equal(load_image(rgba), out)  # same for an HxWx4 array


def test_rgba_photo_from_shared_data(shared_data):
    p = next(p for p in sorted((shared_data / "faces").glob("*/*.png")) if Image.open(p).mode == "RGBA")
    out = load_image(p)
    assert out.shape == np.asarray(Image.open(p)).shape[:2] + (3,) and out.dtype == np.uint8


def test_palette_image(tmp_path):
    rgb = _pattern(40, 40)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p = tmp_path / "pal.gif"
    pal.save(p)
    out = load_image(p)
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 16


def test_bytes_pil_path_and_file_object_agree(tmp_path):
    img = _pattern(50, 70)
    p = tmp_path / "a.png"
    Image.fromarray(img).save(p)
    from_path = load_image(p)
    np.testing.assert_array_equal(from_path, img)
    np.testing.assert_array_equal(load_image(str(p)), img)
    np.testing.assert_array_equal(load_image(p.read_bytes()), img)
    np.testing.assert_array_equal(load_image(Image.open(p)), img)
    with open(p, "rb") as fh:
        np.testing.assert_array_equal(load_image(fh), img)
    with pytest.raises(ImageError, match="<bytes>"):
        load_image(b"GIF89a but not really")


def test_arrays_grey_float_and_copy():
    grey = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    out = load_image(grey)
    assert out.shape == (32, 32, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 1] == 255
    np.testing.assert_array_equal(load_image(grey[..., None]), out)
    src = _pattern()
    again = load_image(src)
    again[0, 0] = 0
    assert src[0, 0, 0] == 255  # the caller's array is never modified or aliased


def test_webp_from_shared_data(shared_data):
    out = load_image(shared_data / "faces" / "deepface_13" / "3.webp")
    assert out.shape == (1800, 1350, 3)


def test_iter_image_files(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ("a.JPG", "b/c.png", "b/notes.txt", ".hidden/d.jpg", "e.webp"):
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["a.JPG", "b/c.png", "e.webp"]
    assert [p.name for p in iter_image_files(tmp_path, recursive=False)] == ["a.JPG", "e.webp"]
    with pytest.raises(NotADirectoryError):
        list(iter_image_files(tmp_path / "a.JPG"))


def test_a_photo_converted_a_strip_at_a_time_is_the_whole_conversion(monkeypatch):
    """Large photos are converted to RGB a few rows at a time (no full-size temporary copies); every
    mode comes out exactly as one whole-image conversion gives it, strips of a single row included."""
    import facenet_keras.images as images

    rng = np.random.default_rng(1)
    rgba = Image.fromarray(rng.integers(0, 256, (23, 37, 4), np.uint8), "RGBA")
    palette = rgba.convert("RGB").quantize(16)
    clear = palette.copy()
    clear.info["transparency"] = 3
    sixteen = Image.fromarray(rng.integers(0, 65536, (23, 37), np.uint16))
    modes = [rgba, rgba.convert("RGB"), rgba.convert("L"), rgba.convert("1"), rgba.convert("LA"), palette, clear]
    modes += [rgba.convert("CMYK"), rgba.convert("RGB").convert("YCbCr"), sixteen]
    whole = [images._strip_to_rgb(im, "whole") for im in modes]
    monkeypatch.setattr(images, "_STRIP_PIXELS", 40)  # one row of 37 pixels per strip
    converted = []
    convert = Image.Image.convert
    monkeypatch.setattr(
        Image.Image, "convert", lambda self, *a, **k: converted.append(self.size) or convert(self, *a, **k)
    )
    for im, expected in zip(modes, whole):
        got = load_image(im)
        assert got.shape == (23, 37, 3) and np.array_equal(got, expected), im.mode
    assert converted and set(converted) == {(37, 1)}  # never a whole-image copy
