"""Tile geometry of sliced inference: hand-worked grids, edges, overlap, small images."""
import pytest
import torch

from fcosdet.structures.slicing import check_slice_params, clip_to_tile, slice_grid, slice_starts


@pytest.mark.parametrize('length, size, overlap, expected', [
    (10, 4, 0.5, [0, 2, 4, 6]),     # step 2, the last tile ends exactly at 10
    (9, 4, 0.5, [0, 2, 4, 5]),      # the last tile shifted back from 6 to 9 - 4
    (8, 4, 0.0, [0, 4]),            # no overlap: tiles side by side
    (9, 4, 0.0, [0, 4, 5]),
    (250, 100, 0.25, [0, 75, 150]),  # step 100 - floor(25) = 75
    (250, 100, 0.2, [0, 80, 150]),
    (100, 100, 0.2, [0]),           # exactly one tile
    (60, 100, 0.2, [0]),            # shorter than a tile
])
def test_slice_starts(length, size, overlap, expected):
    assert slice_starts(length, size, overlap) == expected


def test_grid_row_by_row_with_shifted_last_tiles():
    tiles = slice_grid(200, 300, (100, 100), 0.2)
    # x starts 0, 80, 160, 200 (300 - 100); y starts 0, 80, 100 (200 - 100)
    xs, ys = [0, 80, 160, 200], [0, 80, 100]
    expected = [[x, y, x + 100, y + 100] for y in ys for x in xs]
    assert tiles.tolist() == expected
    assert tiles.dtype == torch.int64


def test_grid_tile_height_and_width_differ():
    # tiles of h 50 x w 100 on a 100 x 150 image, 0 overlap: x starts 0, 50; y starts 0, 50
    tiles = slice_grid(100, 150, (50, 100), 0.0)
    assert tiles.tolist() == [[0, 0, 100, 50], [50, 0, 150, 50],
                              [0, 50, 100, 100], [50, 50, 150, 100]]


def test_image_smaller_than_a_tile_is_one_tile():
    assert slice_grid(50, 60, (100, 100), 0.2).tolist() == [[0, 0, 60, 50]]
    # shorter on one side only: one row of tiles, as tall as the image
    assert slice_grid(50, 300, (100, 100), 0.2).tolist() == [
        [0, 0, 100, 50], [80, 0, 180, 50], [160, 0, 260, 50], [200, 0, 300, 50]]


def test_every_pixel_covered_and_tiles_inside():
    for h, w, size, ov in ((123, 457, (40, 64), 0.3), (64, 64, (32, 32), 0.0),
                           (1000, 37, (100, 100), 0.9)):
        tiles = slice_grid(h, w, size, ov)
        cover = torch.zeros(h, w, dtype=torch.bool)
        for x1, y1, x2, y2 in tiles.tolist():
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert (y2 - y1, x2 - x1) == (min(size[0], h), min(size[1], w))
            cover[y1:y2, x1:x2] = True
        assert cover.all()


@pytest.mark.parametrize('size, overlap, match', [
    ((0, 64), 0.2, 'slice size'), ((64,), 0.2, 'slice size'), ((64.0, 64), 0.2, 'slice size'),
    ((64, 64), 1.0, 'overlap'), ((64, 64), -0.1, 'overlap'), ((64, 64), '0.2', 'overlap'),
])
def test_bad_slice_params(size, overlap, match):
    with pytest.raises(ValueError, match=match):
        check_slice_params(size, overlap)


def test_clip_to_tile():
    boxes = torch.tensor([[90., 10., 110., 30.],    # half inside the first tile
                          [20., 20., 40., 60.],     # inside
                          [150., 0., 170., 20.],    # outside the first tile
                          [50., 50., 50., 60.]])    # zero area
    clipped, ratio = clip_to_tile(boxes, torch.tensor([0, 0, 100, 100]))
    assert clipped[:2].tolist() == [[90., 10., 100., 30.], [20., 20., 40., 60.]]
    assert ratio.tolist() == [0.5, 1.0, 0.0, 0.0]
    # a tile elsewhere: coordinates relative to its corner (80, 0)
    clipped, ratio = clip_to_tile(boxes, torch.tensor([80, 0, 180, 100]))
    assert clipped[0].tolist() == [10., 10., 30., 30.] and ratio[0] == 1.0
    assert clipped[2].tolist() == [70., 0., 90., 20.] and ratio[2] == 1.0
