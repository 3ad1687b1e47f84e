import math

import pytest
import torch

from fcosdet.models.losses import GIoULoss, IoULoss
from fcosdet.registry import MODELS

# IoU 25 / 175 = 1/7 (enclosing area 225), and a disjoint pair (IoU 0, enclosing 3, union 2).
PRED = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
TARGET = torch.tensor([[5.0, 5.0, 15.0, 15.0], [2.0, 0.0, 3.0, 1.0]], dtype=torch.float64)


@pytest.mark.parametrize('mode, expected', [
    ('log', [math.log(7), -math.log(1e-6)]),
    ('linear', [6 / 7, 1.0]),
    ('square', [1 - 1 / 49, 1.0]),
])
def test_iou_loss_modes(mode, expected):
    loss = MODELS.build(dict(type='IoULoss', mode=mode, reduction='none'))
    assert loss(PRED, TARGET).tolist() == pytest.approx(expected)


def test_giou_loss_hand_values():
    out = GIoULoss(reduction='none')(PRED, TARGET)
    assert out.tolist() == pytest.approx([1 - (1 / 7 - 50 / 225), 1 + 1 / 3])


def test_weight_avg_factor_reduction_and_loss_weight():
    loss = IoULoss(mode='linear', loss_weight=3.0)
    weight = torch.tensor([0.5, 2.0], dtype=torch.float64)
    per_box = torch.tensor([6 / 7, 1.0], dtype=torch.float64)
    assert loss(PRED, TARGET).item() == pytest.approx(3 * per_box.mean().item())
    assert loss(PRED, TARGET, weight=weight, avg_factor=2.5).item() == pytest.approx(
        3 * (per_box * weight).sum().item() / 2.5)
    assert loss(PRED, TARGET, reduction_override='sum').item() == pytest.approx(
        3 * per_box.sum().item())


def test_perfect_prediction_gives_zero():
    box = torch.tensor([[1.0, 2.0, 5.0, 9.0]])
    assert IoULoss()(box, box).item() == pytest.approx(0.0, abs=1e-6)
    assert GIoULoss()(box, box).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('loss', [IoULoss(), IoULoss(mode='square'), GIoULoss()])
def test_no_boxes_gives_exact_zero_attached_to_graph(loss):
    pred = torch.zeros(0, 4, requires_grad=True)
    out = loss(pred, torch.zeros(0, 4), weight=torch.zeros(0))
    assert out.item() == 0 and out.grad_fn is not None
    out.backward()
    assert pred.grad.shape == (0, 4)
    assert loss(pred, torch.zeros(0, 4), reduction_override='none').shape == (0,)


def test_gradient_pushes_prediction_towards_target():
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]], requires_grad=True)
    GIoULoss()(pred, torch.tensor([[5.0, 5.0, 15.0, 15.0]])).backward()
    # Growing x2 / y2 increases the overlap, so the loss must fall along +x2 / +y2.
    assert pred.grad[0, 2] < 0 and pred.grad[0, 3] < 0


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="'cubic'"):
        IoULoss(mode='cubic')
    with pytest.raises(ValueError, match='GIoULoss'):
        GIoULoss(reduction='max')
    with pytest.raises(ValueError, match=r'\[R, 4\]'):
        IoULoss()(torch.zeros(2, 4), torch.zeros(3, 4))
