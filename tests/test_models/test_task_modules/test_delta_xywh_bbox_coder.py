import math

import pytest
import torch

from fcosdet.registry import TASK_UTILS
from fcosdet.utils import register_all_modules

register_all_modules()
ATSS_CODER = dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                  target_stds=[0.1, 0.1, 0.2, 0.2])


def test_encode_by_hand_and_round_trip():
    coder = TASK_UTILS.build(ATSS_CODER)
    prior = torch.tensor([[-32.0, -32.0, 32.0, 32.0]])  # centre (0, 0), 64 x 64
    gt = torch.tensor([[0.0, 0.0, 40.0, 20.0]])  # centre (20, 10), 40 x 20
    deltas = coder.encode(prior, gt)
    expected = [20 / 64 / 0.1, 10 / 64 / 0.1, math.log(40 / 64) / 0.2, math.log(20 / 64) / 0.2]
    torch.testing.assert_close(deltas, torch.tensor([expected]))
    torch.testing.assert_close(coder.decode(prior, deltas), gt)


def test_means_are_subtracted():
    coder = TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder', target_means=[1.0, 0, 0, 0]))
    same = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert coder.encode(same, same).tolist() == [[-1.0, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(coder.decode(same, torch.tensor([[-1.0, 0, 0, 0]])), same)


def test_batched_decode_clips_each_image_and_clamps_ratios():
    coder = TASK_UTILS.build(ATSS_CODER)
    priors = torch.tensor([[0.0, 0.0, 20.0, 20.0]])  # [R=1, 4]
    # Image 0: shift right by 0.5 w = 10 px (dx = 5 with std 0.1); image 1: dw = 50 would
    # grow w by e^10, clamped at |ln(0.016)| ≈ 4.135.
    deltas = torch.tensor([[[5.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 50.0, 0.0]]])  # [N, R, 4]
    boxes = coder.decode(priors, deltas, max_shape=torch.tensor([[100, 25], [1000, 1000]]))
    assert boxes[0].tolist() == [[10.0, 0.0, 25.0, 20.0]]  # x2 = 30 clipped to w = 25
    half_w = 20 * math.exp(abs(math.log(16 / 1000))) / 2
    torch.testing.assert_close(boxes[1], torch.tensor([[0.0, 0.0, 10 + half_w, 20.0]]))


def test_ctr_clamp():
    coder = TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder', add_ctr_clamp=True, ctr_clamp=4))
    prior = torch.tensor([[0.0, 0.0, 20.0, 20.0]])
    # dx = 1 would move the centre by 20 px; it is clamped to 4.
    assert coder.decode(prior, torch.tensor([[1.0, 0.0, 0.0, 0.0]])).tolist() == [
        [4.0, 0.0, 24.0, 20.0]]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='4 values each'):
        TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder', target_stds=[1.0]))
    with pytest.raises(ValueError, match='must be positive'):
        TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder', target_stds=[1.0, 1.0, 0.0, 1.0]))
