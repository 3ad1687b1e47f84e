import pytest
import torch

from fcosdet.registry import TASK_UTILS
from fcosdet.utils import register_all_modules

register_all_modules()


def _atss_generator(strides=(8, 16)):
    return TASK_UTILS.build(dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8,
                                 scales_per_octave=1, strides=list(strides)))


def test_one_square_anchor_per_point_at_cell_corners():
    gen = _atss_generator()
    assert gen.num_base_priors == [1, 1] and gen.num_levels == 2
    level0, level1 = gen.grid_priors([(2, 3), (1, 2)])
    # Level 0: 64 x 64 anchors (8 * stride 8) centred at (8j, 8i), j fastest.
    centres = [(0, 0), (8, 0), (16, 0), (0, 8), (8, 8), (16, 8)]
    assert level0.tolist() == [[x - 32, y - 32, x + 32, y + 32] for x, y in centres]
    # Level 1: 128 x 128 anchors centred at (0, 0) and (16, 0).
    assert level1.tolist() == [[-64, -64, 64, 64], [-48, -64, 80, 64]]


def test_ratios_scales_order_and_center_offset():
    gen = TASK_UTILS.build(dict(type='AnchorGenerator', strides=[4], ratios=[0.25, 1.0],
                                scales=[1.0, 2.0], center_offset=0.5))
    assert gen.num_base_priors == [4]
    (anchors,) = gen.grid_priors([(1, 2)], dtype=torch.float64)
    assert anchors.dtype == torch.float64
    # ratio h/w = 0.25: w = 4 / sqrt(0.25) = 8, h = 4 * 0.5 = 2 (scale 1), doubled for scale 2;
    # scale-major order: both scales of the first ratio first. Centre (2, 2) then (6, 2).
    base = [[-2, 1, 6, 3], [-6, 0, 10, 4], [0, 0, 4, 4], [-2, -2, 6, 6]]
    assert anchors.tolist() == base + [[x1 + 4, y1, x2 + 4, y2] for x1, y1, x2, y2 in base]


def test_valid_flags_follow_each_images_padded_shape():
    gen = _atss_generator()
    # Batch maps are 2 x 3 (stride 8) and 1 x 2 (stride 16); image 1 is padded to 8 x 24.
    flags = gen.valid_flags([(2, 3), (1, 2)], torch.tensor([[16, 24], [8, 24]]))
    assert flags.tolist() == [[True] * 6 + [True, True],
                              [True, True, True, False, False, False] + [True, True]]
    # ceil(17 / 8) = 3 rows would be valid, capped at the map's 2; ceil(17 / 16) = 2 columns.
    flags = gen.valid_flags([(2, 3), (1, 2)], torch.tensor([[17, 9]]))
    assert flags.tolist() == [[True, True, False, True, True, False, True, False]]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='either scales or both'):
        TASK_UTILS.build(dict(type='AnchorGenerator', strides=[8], ratios=[1.0]))
    with pytest.raises(ValueError, match='AnchorGenerator: a stride'):
        TASK_UTILS.build(dict(type='AnchorGenerator', strides=[0], ratios=[1.0], scales=[1]))
    with pytest.raises(ValueError, match='2 feature-map sizes for 1 strides'):
        _atss_generator(strides=(8,)).grid_priors([(1, 1), (1, 1)])
