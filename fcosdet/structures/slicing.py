"""Tile geometry of sliced inference and of slicing a dataset into tiles.

Shape letters: T tiles of an image, K boxes. Boxes and tiles are absolute-pixel
``(x1, y1, x2, y2)`` (pixel edges: a tile of width w starting at x covers ``[x, x + w)``).

The grid: tiles of ``(h, w)`` pixels every ``step = size - floor(size * overlap)`` pixels along
each side, starting at 0; the last tile of a row (column) is shifted back to end at the image
border, so every tile has the full size and no tile sticks out (the geometry of SAHI's
``get_slice_bboxes``). A side shorter than the tile gets one tile covering all of it, so an
image smaller than a tile is one tile: the whole image.
"""
import math
from collections.abc import Sequence

import torch
from torch import Tensor

# How the detections of overlapping tiles are merged (fcosdet.models.layers.merge).
MERGE_MODES: tuple[str, ...] = ('nms', 'nmm')


def check_slice_params(slice_size: Sequence[int], overlap: float) -> tuple[int, int]:
    """``slice_size`` as ``(h, w)``, after checking it and ``overlap``.

    Raises:
        ValueError: ``slice_size`` is not two positive ints, or ``overlap`` is not in [0, 1).
    """
    if (not isinstance(slice_size, Sequence) or len(slice_size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in slice_size)):
        raise ValueError(f'slice size must be (height, width), two ints >= 1, got {slice_size!r}')
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not (
            0 <= overlap < 1):
        raise ValueError(f'slice overlap must be a ratio in [0, 1), got {overlap!r}')
    return int(slice_size[0]), int(slice_size[1])


def slice_starts(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets of the tiles along one side of ``length`` pixels (see the module doc).

    Example: length 10, size 4, overlap 0.5 → step 2, starts ``[0, 2, 4, 6]``; length 9 →
    ``[0, 2, 4, 5]`` (the last one shifted back to end at 9).
    """
    if length <= size:
        return [0]
    step = max(size - math.floor(size * overlap), 1)
    return [*range(0, length - size, step), length - size]


def slice_grid(height: int, width: int, slice_size: Sequence[int],
               overlap: float = 0.2) -> Tensor:
    """Tiles covering an image of ``height`` × ``width`` pixels, row by row.

    Args:
        height: Image height.
        width: Image width.
        slice_size: Tile ``(h, w)``.
        overlap: Overlap ratio of neighbouring tiles, in [0, 1).

    Returns:
        int64 ``[T, 4]`` tiles ``(x1, y1, x2, y2)``; a side shorter than the tile is covered
        by one tile of that side's length.
    """
    tile_h, tile_w = check_slice_params(slice_size, overlap)
    ys = torch.tensor(slice_starts(height, tile_h, overlap), dtype=torch.int64)
    xs = torch.tensor(slice_starts(width, tile_w, overlap), dtype=torch.int64)
    y1, x1 = torch.meshgrid(ys, xs, indexing='ij')
    x1, y1 = x1.reshape(-1), y1.reshape(-1)
    return torch.stack([x1, y1, (x1 + tile_w).clamp(max=width),
                        (y1 + tile_h).clamp(max=height)], dim=1)


def clip_to_tile(bboxes: Tensor, tile: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes clipped to a tile, in the tile's coordinates, and the share of each box inside.

    Args:
        bboxes: float ``[K, 4]`` boxes in image coordinates.
        tile: ``[4]`` tile ``(x1, y1, x2, y2)``.

    Returns:
        ``[K, 4]`` clipped boxes relative to the tile's top-left corner, and ``[K]`` visible
        ratio (clipped area / box area; 0 for a box of zero area).
    """
    tile = tile.to(bboxes.dtype)
    lt = torch.maximum(bboxes[:, :2], tile[:2])
    rb = torch.maximum(torch.minimum(bboxes[:, 2:], tile[2:]), lt)
    clipped = torch.cat([lt, rb], dim=1)
    inside = (rb - lt).prod(dim=1)
    area = (bboxes[:, 2:] - bboxes[:, :2]).clamp(min=0).prod(dim=1)
    ratio = torch.where(area > 0, inside / area.clamp(min=1e-12), torch.zeros_like(area))
    return clipped - tile[:2].repeat(2), ratio
