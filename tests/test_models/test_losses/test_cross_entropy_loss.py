import math

import pytest
import torch

from fcosdet.models.losses import CrossEntropyLoss
from fcosdet.registry import MODELS


def _bce(x, t):
    p = 1 / (1 + math.exp(-x))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def test_sigmoid_matches_formula_with_soft_targets():
    loss = MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='none'))
    pred = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    target = torch.tensor([1.0, 0.3, 0.0], dtype=torch.float64)
    expected = [_bce(0.5, 1.0), _bce(-1.0, 0.3), _bce(2.0, 0.0)]
    assert loss(pred, target).tolist() == pytest.approx(expected)
    summed = CrossEntropyLoss(loss_weight=0.5)(pred, target, weight=torch.tensor([1.0, 2, 0]),
                                               avg_factor=4)
    assert summed.item() == pytest.approx(0.5 * (expected[0] + 2 * expected[1]) / 4)


def test_softmax_matches_formula():
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([2, 0])
    log_norm = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    expected = [log_norm - 3, math.log(3)]
    loss = CrossEntropyLoss(use_sigmoid=False)
    assert loss(pred, target, reduction_override='none').tolist() == pytest.approx(expected)
    assert loss(pred, target).item() == pytest.approx(sum(expected) / 2)


def test_bad_input_raises():
    with pytest.raises(ValueError, match='must match pred'):
        CrossEntropyLoss()(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match='softmax'):
        CrossEntropyLoss(use_sigmoid=False)(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="'avg'"):
        CrossEntropyLoss(reduction='avg')
