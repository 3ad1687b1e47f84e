import pytest
import torch

from fcosdet.models.losses import weight_reduce_loss


def test_weight_and_reductions():
    loss = torch.tensor([1.0, 2.0, 3.0, 4.0])
    weight = torch.tensor([1.0, 0.0, 2.0, 1.0])
    assert weight_reduce_loss(loss, weight, 'none').tolist() == [1, 0, 6, 4]
    assert weight_reduce_loss(loss, weight, 'sum').item() == 11
    assert weight_reduce_loss(loss, weight, 'mean').item() == pytest.approx(11 / 4)
    assert weight_reduce_loss(loss, weight, 'mean', avg_factor=2).item() == pytest.approx(5.5)
    assert weight_reduce_loss(loss, None, 'mean', avg_factor=5).item() == pytest.approx(2.0)
    # avg_factor does not change 'none'.
    assert weight_reduce_loss(loss, None, 'none', avg_factor=5).tolist() == [1, 2, 3, 4]


def test_row_weight_broadcasts_over_columns():
    loss = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = weight_reduce_loss(loss, torch.tensor([2.0, 0.5]), 'none')
    assert out.tolist() == [[2, 4], [1.5, 2]]


def test_bad_reduction_raises():
    with pytest.raises(ValueError, match="'avg'"):
        weight_reduce_loss(torch.ones(2), reduction='avg')
    with pytest.raises(ValueError, match='avg_factor'):
        weight_reduce_loss(torch.ones(2), reduction='sum', avg_factor=2)
