"""Per-class colours for drawing boxes."""
import colorsys
from collections.abc import Sequence

# Hue step of the golden ratio: consecutive classes get well separated hues.
_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def generate_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Make a deterministic palette of distinct, saturated RGB colours.

    The one palette generator of fcosdet: datasets put it into their ``metainfo['palette']``
    and the visualizer falls back on it when ``dataset_meta`` has none.

    Args:
        num_classes: Number of colours C.

    Returns:
        C colours as ``(r, g, b)`` tuples of ints in [0, 255].
    """
    colours = []
    for i in range(num_classes):
        hue = (i * _GOLDEN_RATIO_CONJUGATE) % 1.0
        value = 0.95 if i % 2 == 0 else 0.75  # alternate brightness: neighbours differ twice
        r, g, b = colorsys.hsv_to_rgb(hue, 0.8, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def get_palette(palette: Sequence[Sequence[int]] | None,
                num_classes: int) -> list[tuple[int, int, int]]:
    """Check a dataset palette, or generate one when there is none.

    Args:
        palette: RGB colours from ``dataset_meta['palette']``, or None.
        num_classes: Number of classes C the palette must cover.

    Returns:
        At least C colours as ``(r, g, b)`` int tuples.

    Raises:
        ValueError: If the palette is too short or holds a colour that is not 3 ints in [0, 255].
    """
    if palette is None:
        return generate_palette(num_classes)
    if len(palette) < num_classes:
        raise ValueError(f"dataset_meta['palette'] has {len(palette)} colours but there are "
                         f'{num_classes} classes')
    checked = []
    for colour in palette:
        if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
            raise ValueError(f"dataset_meta['palette'] colour {colour!r} is not an RGB "
                             'triple of ints in [0, 255]')
        checked.append(tuple(int(c) for c in colour))
    return checked
