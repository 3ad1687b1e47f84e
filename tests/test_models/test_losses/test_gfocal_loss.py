import math

import pytest
import torch

from fcosdet.registry import MODELS
from fcosdet.utils import register_all_modules

register_all_modules()


def _bce(p, y):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_quality_focal_loss_matches_formula():
    """Row 0: positive of class 1 with IoU target 0.6; row 1: background (label C = 2)."""
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(0.25 / 0.75), 1.0]])
    labels, scores = torch.tensor([1, 2]), torch.tensor([0.6, 0.0])
    sig1 = 1 / (1 + math.exp(-1.0))
    # Class 0 of row 0: target 0, p = 0.5 -> BCE(0.5, 0) * 0.5^2; class 1: p = 0.75, y = 0.6.
    row0 = _bce(0.5, 0) * 0.5 ** 2 + _bce(0.75, 0.6) * abs(0.6 - 0.75) ** 2
    row1 = _bce(0.25, 0) * 0.25 ** 2 + _bce(sig1, 0) * sig1 ** 2
    qfl = MODELS.build(dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0,
                            reduction='none'))
    torch.testing.assert_close(qfl(logits, (labels, scores)), torch.tensor([row0, row1]))
    mean = MODELS.build(dict(type='QualityFocalLoss', loss_weight=0.5))
    torch.testing.assert_close(mean(logits, (labels, scores), weight=torch.tensor([1.0, 2.0]),
                                    avg_factor=4.0), torch.tensor(0.5 * (row0 + 2 * row1) / 4))
    # The dense soft target gives the same numbers.
    dense = torch.tensor([[0.0, 0.6], [0.0, 0.0]])
    torch.testing.assert_close(qfl(logits, dense), torch.tensor([row0, row1]))


def test_quality_focal_loss_activated_takes_probabilities():
    probs = torch.tensor([[0.5, 0.75]])
    qfl = MODELS.build(dict(type='QualityFocalLoss', activated=True, reduction='none'))
    expected = _bce(0.5, 0) * 0.25 + _bce(0.75, 0.6) * 0.15 ** 2
    torch.testing.assert_close(qfl(probs, (torch.tensor([1]), torch.tensor([0.6]))),
                               torch.tensor([expected]))


def test_distribution_focal_loss_matches_formula():
    # Uniform over 3 bins, target 0.3: -(0.7 ln 1/3 + 0.3 ln 1/3) = ln 3.
    # Softmax (0.25, 0.5, 0.25), target 1.5: -(0.5 ln 0.5 + 0.5 ln 0.25).
    pred = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0]])
    target = torch.tensor([0.3, 1.5])
    dfl = MODELS.build(dict(type='DistributionFocalLoss', loss_weight=0.25, reduction='none'))
    expected = [math.log(3), -(0.5 * math.log(0.5) + 0.5 * math.log(0.25))]
    torch.testing.assert_close(dfl(pred, target), 0.25 * torch.tensor(expected))
    mean = MODELS.build(dict(type='DistributionFocalLoss'))
    torch.testing.assert_close(mean(pred, target, avg_factor=4.0),
                               torch.tensor(sum(expected) / 4))


def test_bad_input_raises():
    dfl = MODELS.build(dict(type='DistributionFocalLoss'))
    with pytest.raises(ValueError, match=r'targets must lie in \[0, 2\)'):
        dfl(torch.zeros(1, 3), torch.tensor([2.0]))
    with pytest.raises(ValueError, match='only use_sigmoid=True'):
        MODELS.build(dict(type='QualityFocalLoss', use_sigmoid=False))
    qfl = MODELS.build(dict(type='QualityFocalLoss'))
    with pytest.raises(ValueError, match='must be \\[R\\]'):
        qfl(torch.zeros(2, 3), (torch.tensor([0]), torch.tensor([0.5])))
