import math

import pytest
import torch

from fcosdet.models.losses import FocalLoss
from fcosdet.registry import MODELS

LOGITS = [[0.0, 2.0], [-1.0, 0.5], [1.0, 1.0]]
LABELS = [0, 1, 2]  # C = 2: the last row is background


def _hand_focal(logits, labels, gamma=2.0, alpha=0.25):
    """Per-element focal loss written straight from the formula."""
    rows = []
    for row, label in zip(logits, labels):
        out = []
        for c, x in enumerate(row):
            p = 1 / (1 + math.exp(-x))
            if c == label:
                out.append(-alpha * (1 - p) ** gamma * math.log(p))
            else:
                out.append(-(1 - alpha) * p ** gamma * math.log(1 - p))
        rows.append(out)
    return torch.tensor(rows, dtype=torch.float64)


def test_matches_formula_with_background_label():
    loss = MODELS.build(dict(type='FocalLoss', reduction='none'))
    pred = torch.tensor(LOGITS, dtype=torch.float64)
    out = loss(pred, torch.tensor(LABELS))
    expected = _hand_focal(LOGITS, LABELS)
    assert out.shape == (3, 2)
    assert torch.allclose(out, expected)
    # Background row: both columns are negatives.
    assert out[2, 0].item() == pytest.approx(-(0.75) * (1 / (1 + math.exp(-1))) ** 2
                                             * math.log(1 - 1 / (1 + math.exp(-1))))


def test_reductions_weight_avg_factor_and_loss_weight():
    pred = torch.tensor(LOGITS, dtype=torch.float64)
    labels = torch.tensor(LABELS)
    expected = _hand_focal(LOGITS, LABELS, gamma=1.5, alpha=0.4)
    loss = FocalLoss(gamma=1.5, alpha=0.4, loss_weight=2.0)
    assert loss(pred, labels).item() == pytest.approx(2 * expected.mean().item())
    assert loss(pred, labels, avg_factor=4).item() == pytest.approx(2 * expected.sum().item() / 4)
    assert loss(pred, labels, reduction_override='sum').item() == pytest.approx(
        2 * expected.sum().item())
    row_weight = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    assert loss(pred, labels, weight=row_weight, reduction_override='sum').item() == pytest.approx(
        2 * (expected * row_weight[:, None]).sum().item())
    elem_weight = torch.tensor([[1.0, 0.0], [0.5, 2.0], [0.0, 1.0]], dtype=torch.float64)
    assert loss(pred, labels, weight=elem_weight, avg_factor=3).item() == pytest.approx(
        2 * (expected * elem_weight).sum().item() / 3)


def test_one_hot_target_equals_label_target():
    pred = torch.tensor(LOGITS)
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    loss = FocalLoss(reduction='sum')
    assert loss(pred, one_hot).item() == pytest.approx(loss(pred, torch.tensor(LABELS)).item())


def test_extreme_logits_are_finite_and_gradient_flows():
    pred = torch.tensor([[100.0, -100.0]], requires_grad=True)
    out = FocalLoss(reduction='none')(pred, torch.tensor([1]))
    # Confident wrong answers: −(1−α)·1·log(1−p) ≈ 0.75·100 and −α·1·log(p) ≈ 0.25·100.
    assert out.tolist() == [[pytest.approx(75.0), pytest.approx(25.0)]]
    out.sum().backward()
    assert torch.isfinite(pred.grad).all()


def test_bad_config_raises():
    with pytest.raises(ValueError, match='use_sigmoid'):
        FocalLoss(use_sigmoid=False)
    with pytest.raises(ValueError, match="'avg'"):
        FocalLoss(reduction='avg')
    with pytest.raises(ValueError, match='target'):
        FocalLoss()(torch.zeros(3, 2), torch.zeros(3, 3))


def test_activated_takes_probabilities():
    """TOOD's warm-up loss: the same formula on probabilities instead of logits."""
    loss = MODELS.build(dict(type='FocalLoss', activated=True, reduction='none'))
    probs = torch.tensor(LOGITS, dtype=torch.float64).sigmoid()
    torch.testing.assert_close(loss(probs, torch.tensor(LABELS)), _hand_focal(LOGITS, LABELS))
