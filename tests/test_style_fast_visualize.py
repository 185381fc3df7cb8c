"""TF-Hub fast stylisation (a tiny SavedModel built here) and the layer visualisation."""

import numpy as np
import pytest
import tensorflow as tf

from style_transfer import images as im


class TinyStylizer(tf.Module):
    """Magenta's signature with a trivial rule: half content, half the style's mean colour."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32),
            tf.TensorSpec([None, None, None, 3], tf.float32),
        ]
    )
    def __call__(self, content, style):
        mean = tf.reduce_mean(style, axis=[1, 2], keepdims=True)
        return [0.5 * content + 0.5 * mean]


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "tiny_stylizer"
    tf.saved_model.save(TinyStylizer(), str(path))
    return path


def test_fast_stylize_with_a_local_savedmodel(hub_dir, shared_data):
    from style_transfer.fast import fast_stylize, load_hub_model

    d = shared_data / "style"
    model = load_hub_model(hub_dir)
    out = fast_stylize(d / "content" / "coffee.png", d / "style" / "great_wave_hokusai.jpg", model, size=64)
    content = im.load_image(d / "content" / "coffee.png", 64)
    style = im.resize(im.load_image(d / "style" / "great_wave_hokusai.jpg"), 256, 256)
    np.testing.assert_allclose(out, 0.5 * content + 0.5 * style.mean(axis=(0, 1)), atol=1e-5)
    # a path is loaded on the fly
    assert fast_stylize(content, style, str(hub_dir), size=None).shape == content.shape


def test_fast_stylize_missing_model_and_cli(hub_dir, shared_data, tmp_path):
    from style_transfer.cli import main
    from style_transfer.fast import load_hub_model

    with pytest.raises(FileNotFoundError, match="SavedModel"):
        load_hub_model(tmp_path / "nothing")
    d = shared_data / "style"
    out = tmp_path / "fast.png"
    assert (
        main(
            [
                str(d / "content" / "rocket.jpg"),
                str(d / "style" / "the_scream.jpg"),
                "-o",
                str(out),
                "--size",
                "64",
                "--hub-model",
                str(hub_dir),
            ]
        )
        == 0
    )
    assert max(im.load_image(out).shape[:2]) == 64


def test_top_activating_patches(shared_data):
    from style_transfer.vgg import receptive_field
    from style_transfer.visualize import (
        feature_maps,
        patch_grid,
        plot_feature_maps,
        plot_top_patches,
        top_activating_patches,
    )

    images = sorted((shared_data / "style" / "content").iterdir()) + sorted((shared_data / "style" / "style").iterdir())
    layer = "block2_conv1"
    units = [0, 5, 17]
    found = top_activating_patches(images, layer, units, k=9, size=96)
    rf = receptive_field(layer)[0]
    assert [u.unit for u in found] == units
    for u in found:
        assert u.patches.shape == (9, rf, rf, 3)
        assert np.all(np.diff(u.activations) <= 0) and u.activations[0] > 0
        assert len(set(u.image_index.tolist())) == 9  # one patch per image
    # the first patch is where the unit fires most on its image: recompute that activation
    u = found[1]
    maps = feature_maps(images[u.image_index[0]], layer, size=96)
    r, c = u.positions[0]
    assert maps[r, c, u.unit] == pytest.approx(u.activations[0], rel=1e-4)
    assert maps[..., u.unit].max() == pytest.approx(u.activations[0], rel=1e-4)
    grid = patch_grid(found)
    assert grid.shape[0] == 3 * rf + 4 and grid.ndim == 3
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_top_patches(found, layer)
    assert len(fig.axes) == 3
    assert len(plot_feature_maps(maps, n=8, cols=4).axes) == 8
