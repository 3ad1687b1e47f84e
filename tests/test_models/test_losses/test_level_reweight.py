import pytest
import torch

from fcosdet.models.losses.level_reweight import count_level_positives, level_reweight_factors


def test_factors_run_linearly_from_two_to_one():
    counts = torch.tensor([10.0, 4.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    # min 0, max 10: factor = 2 - n / 10
    assert level_reweight_factors(counts).tolist() == pytest.approx([1.0, 1.6, 1.9, 2.0, 2.0])
    counts = torch.tensor([7.0, 3.0, 5.0], dtype=torch.float64)  # min 3, max 7: 2 - (n-3)/4
    assert level_reweight_factors(counts).tolist() == pytest.approx([1.0, 2.0, 1.5])


def test_equal_counts_give_two_everywhere():
    assert level_reweight_factors(torch.zeros(5, dtype=torch.float64)).tolist() == [2.0] * 5
    assert level_reweight_factors(torch.full((3,), 4.0)).tolist() == [2.0] * 3


def test_positives_are_counted_per_level_over_all_images():
    pos_mask = torch.tensor([[1, 0, 1, 0, 1, 0],
                             [0, 0, 0, 1, 0, 0]], dtype=torch.bool)
    counts = count_level_positives(pos_mask, [4, 2])
    assert counts.dtype == torch.float64
    assert counts.tolist() == [3.0, 1.0]
