import pytest
import torch

from fcosdet.models.task_modules import MlvlPointGenerator
from fcosdet.registry import TASK_UTILS


def test_grid_priors_coordinates_row_major():
    gen = TASK_UTILS.build(dict(type='MlvlPointGenerator', strides=[8, (16, 32)]))
    assert gen.num_levels == 2
    assert gen.strides == [(8, 8), (16, 32)]
    level0, level1 = gen.grid_priors([(2, 3), (2, 2)])
    assert level0.shape == (6, 2) and level0.dtype == torch.float32
    # Row i = 1, column j = 2 is index 1 * 3 + 2 = 5: ((2 + .5) * 8, (1 + .5) * 8).
    assert level0.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert level0[5].tolist() == [20.0, 12.0]
    # Anisotropic stride: x uses s_w = 16, y uses s_h = 32.
    assert level1.tolist() == [[8, 16], [24, 16], [8, 48], [24, 48]]


def test_dtype_and_offset():
    gen = MlvlPointGenerator([4], offset=0.0)
    (points,) = gen.grid_priors([(1, 2)], dtype=torch.float64)
    assert points.dtype == torch.float64
    assert points.tolist() == [[0, 0], [4, 0]]


def test_bad_input_raises():
    with pytest.raises(ValueError, match='stride'):
        MlvlPointGenerator([8, -16])
    with pytest.raises(ValueError, match='2 feature-map sizes for 1 strides'):
        MlvlPointGenerator([8]).grid_priors([(1, 1), (1, 1)])
