"""The pieces every dense head composes: towers, candidate selection with extras."""
import pytest
import torch

from fcosdet.models.dense_heads.dense_postprocess import (
    DENSE_TEST_CFG,
    check_test_cfg,
    topk_candidates,
)
from fcosdet.models.dense_heads.dense_utils import build_tower, flatten_levels


def test_tower_names_and_bias():
    tower = build_tower(8, 16, 2, norm_cfg=dict(type='GN', num_groups=4))
    names = [name for name, _ in tower.named_parameters()]
    # MMDetection's names; 'auto' bias: no conv bias in front of GN.
    assert names == ['0.conv.weight', '0.gn.weight', '0.gn.bias',
                     '1.conv.weight', '1.gn.weight', '1.gn.bias']
    assert tower[0].conv.in_channels == 8 and tower[1].conv.in_channels == 16
    assert len(build_tower(8, 16, 0)) == 0


def test_topk_candidates_pick_maps_and_priors_alongside():
    # One image, level 0 is 1 x 2 (2 points), level 1 is 1 x 1; C = 2.
    probs = [torch.tensor([[[[0.9, 0.01]], [[0.2, 0.6]]]]), torch.tensor([[[[0.7]], [[0.04]]]])]
    maps = [torch.tensor([[[[10.0, 20.0]]]]), torch.tensor([[[[30.0]]]])]
    priors = [torch.tensor([[0.0, 0.0], [8.0, 0.0]]), torch.tensor([[16.0, 16.0]])]
    scores, labels, valid, (values, points) = topk_candidates(
        probs, [[maps[0], priors[0]], [maps[1], priors[1]]], score_thr=0.05, nms_pre=2)
    # Level 0 keeps (point 0, class 0) 0.9 and (point 1, class 1) 0.6; level 1 keeps 0.7 and
    # a padding slot (0.04 is below the threshold).
    assert scores[0, :3].tolist() == pytest.approx([0.9, 0.6, 0.7])
    assert labels[0, :3].tolist() == [0, 1, 0] and valid.tolist() == [[True, True, True, False]]
    assert values[0, :3, 0].tolist() == [10.0, 20.0, 30.0]
    assert points[0, :3].tolist() == [[0, 0], [8, 0], [16, 16]]


def test_flatten_and_test_cfg():
    maps = [torch.arange(8.0).reshape(1, 2, 2, 2)]
    assert flatten_levels(maps)[0].tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    cfg = check_test_cfg(dict(score_thr=0.1), DENSE_TEST_CFG, 'ATSSHead')
    assert cfg['score_thr'] == 0.1 and DENSE_TEST_CFG['score_thr'] == 0.05
    with pytest.raises(KeyError, match='ATSSHead test_cfg: unknown key'):
        check_test_cfg(dict(with_sqrt_score=True), DENSE_TEST_CFG, 'ATSSHead')
