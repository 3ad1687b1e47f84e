"""VarifocalLoss on hand-worked values."""
import math

import pytest
import torch

from fcosdet.models.losses import VarifocalLoss, varifocal_loss
from fcosdet.registry import MODELS


def bce(p: float, q: float) -> float:
    return -(q * math.log(p) + (1 - q) * math.log(1 - p))


def test_hand_worked_elements():
    """Logit 0 (p = 0.5) against q = 0.8: a positive weighted by q; logit ln 3 (p = 0.75)
    against 0: a negative weighted by alpha * p^gamma."""
    pred = torch.tensor([[0.0, math.log(3.0)]])
    target = torch.tensor([[0.8, 0.0]])
    loss = varifocal_loss(pred, target, alpha=0.75, gamma=2.0)
    expected = [0.8 * bce(0.5, 0.8), 0.75 * 0.75 ** 2 * bce(0.75, 0.0)]
    torch.testing.assert_close(loss, torch.tensor([expected]))
    unweighted = varifocal_loss(pred, target, alpha=0.75, gamma=2.0, iou_weighted=False)
    torch.testing.assert_close(unweighted[0, 0], torch.tensor(bce(0.5, 0.8)))
    torch.testing.assert_close(unweighted[0, 1], loss[0, 1])


def test_module_reductions_and_weight():
    pred = torch.tensor([[0.0, math.log(3.0)], [math.log(1 / 3), 0.0]])
    target = torch.tensor([[0.8, 0.0], [0.0, 0.5]])
    elem = varifocal_loss(pred, target)
    module = MODELS.build(dict(type='VarifocalLoss', use_sigmoid=True, alpha=0.75, gamma=2.0,
                               iou_weighted=True, loss_weight=2.0))
    assert isinstance(module, VarifocalLoss)
    torch.testing.assert_close(module(pred, target), 2.0 * elem.mean())
    torch.testing.assert_close(module(pred, target, avg_factor=4.0), 2.0 * elem.sum() / 4.0)
    weight = torch.tensor([1.0, 0.0])  # row weights
    torch.testing.assert_close(module(pred, target, weight=weight, reduction_override='sum'),
                               2.0 * elem[0].sum())
    # negative row 2 col 0: p = 0.25 against 0 -> 0.75 * 0.25^2 * bce(0.25, 0)
    torch.testing.assert_close(elem[1, 0], torch.tensor(0.75 * 0.25 ** 2 * bce(0.25, 0.0)))


def test_gradient_pushes_positives_to_their_iou():
    """The positive's loss is minimal at sigma(p) = q: zero gradient there."""
    q = 0.6
    pred = torch.tensor([[math.log(q / (1 - q))]], requires_grad=True)
    varifocal_loss(pred, torch.tensor([[q]])).sum().backward()
    assert abs(pred.grad.item()) < 1e-6


def test_bad_arguments():
    with pytest.raises(ValueError, match='use_sigmoid'):
        VarifocalLoss(use_sigmoid=False)
    with pytest.raises(ValueError, match='must match pred'):
        VarifocalLoss()(torch.zeros(2, 3), torch.zeros(2))
