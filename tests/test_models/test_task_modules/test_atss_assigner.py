"""ATSS assignment on scenes worked by hand (IoUs as fractions in the comments)."""
import pytest
import torch

from fcosdet.registry import TASK_UTILS
from fcosdet.utils import register_all_modules

register_all_modules()
FAR = [-100.0, -100.0, -90.0, -90.0]  # a prior whose IoU with every gt is 0


def _assign(priors, gts, labels, valid=None, topk=9, num_classes=4, **kwargs):
    assigner = TASK_UTILS.build(dict(type='ATSSAssigner', topk=topk, alpha=kwargs.pop('alpha',
                                                                                     None)))
    gt_bboxes = torch.tensor(gts, dtype=torch.float32).reshape(len(gts), -1, 4)
    gt_labels = torch.tensor(labels, dtype=torch.long).reshape(gt_bboxes.shape[:2])
    gt_valid = (torch.ones(gt_bboxes.shape[:2], dtype=torch.bool) if valid is None
                else torch.tensor(valid))
    return assigner.assign([torch.tensor(p, dtype=torch.float32) for p in priors], gt_bboxes,
                           gt_labels, gt_valid, num_classes, **kwargs)


def test_two_box_scene_candidates_per_level_and_mean_plus_std():
    """gt0 = [0, 0, 20, 20] (centre (10, 10)), gt1 = [10, 0, 30, 20] (centre (20, 10)).

    Level 0, 20 x 20 priors centred at x = 4, 10, 15, 20 (y = 10); level 1, 40 x 40 priors
    centred at x = 10, 30. topk = 2 per level.

    gt0: nearest on level 0 are a1 (distance 0, IoU 1) and a2 (5, IoU 300/500 = 0.6); level 1
    has b0 (IoU 400/1600 = 0.25) and b1 (200/1800 = 1/9). mean = 0.4903, std = 0.3972 (n - 1),
    threshold 0.8875: only a1. Had the 2 candidates been taken over all levels at once (a1 and
    b0, both at distance 0) the threshold would be 1.155 and nothing positive.
    gt1: a3 (0, IoU 1), a2 (5, 0.6), b0 and b1 (0.25 each): mean 0.525, std 0.3571, threshold
    0.8821: only a3.
    """
    level0 = [[-6, 0, 14, 20], [0, 0, 20, 20], [5, 0, 25, 20], [10, 0, 30, 20]]
    level1 = [[-10, -10, 30, 30], [10, -10, 50, 30]]
    result = _assign([level0, level1], [[[0, 0, 20, 20], [10, 0, 30, 20]]], [[3, 1]], topk=2)
    assert result.gt_inds.tolist() == [[-1, 0, -1, 1, -1, -1]]
    assert result.labels.tolist() == [[4, 3, 4, 1, 4, 4]]
    assert result.pos_mask.tolist() == [[False, True, False, True, False, False]]
    assert result.bbox_targets[0, 1].tolist() == [0, 0, 20, 20]
    assert result.bbox_targets[0, 3].tolist() == [10, 0, 30, 20]
    assert result.bbox_targets[0, 0].tolist() == [0, 0, 0, 0]
    assert result.max_overlaps.tolist() == [[0, 1, 0, 1, 0, 0]]


def test_centre_must_be_inside_by_more_than_a_hundredth():
    """gt [0, 0, 10, 10]; all 9 priors are candidates (topk 9, one level).

    q0 = [-5, 0, 15, 10]: IoU 100/200 = 0.5, centre (5, 5) inside.
    q1 = [0, 0, 20, 10]: IoU 0.5, centre (10, 5) on the right side.
    q2 = [0, 0, 19.99, 10]: IoU 100/199.9, centre 0.005 px from the right side.
    q3..q8 far: IoU 0. mean = 0.1667, std = 0.2501, threshold 0.4168: q0, q1, q2 pass it, but
    only q0's centre is inside by more than 0.01.
    """
    priors = [[-5, 0, 15, 10], [0, 0, 20, 10], [0, 0, 19.99, 10]] + [FAR] * 6
    result = _assign([priors], [[[0, 0, 10, 10]]], [[2]])
    assert result.gt_inds.tolist() == [[0] + [-1] * 8]
    assert result.labels.tolist() == [[2] + [4] * 8]
    torch.testing.assert_close(result.max_overlaps[0, 0], torch.tensor(0.5))


def test_conflicts_highest_quality_then_lowest_gt_index_and_batching():
    """Image 0 has no gt; image 1: gt0 = [0, 0, 10, 10], gt1 = [0, 0, 12, 10], gt2 = gt0.

    p0 = [0, 0, 10, 10] has IoU 1, 100/120, 1 with the gts; p1 = [0, 0, 12, 10] has
    100/120, 1, 100/120; six far priors. For every gt the candidates {1, 0.833, 0 x 6} give
    mean 0.229 + std 0.427 = 0.656, so p0 and p1 are positive for all three. p0 goes to gt0
    (IoU 1 ties with gt2: lowest index), p1 to gt1 (highest IoU).
    """
    priors = [[0, 0, 10, 10], [0, 0, 12, 10]] + [FAR] * 6
    gts = [[[0, 0, 0, 0]] * 3, [[0, 0, 10, 10], [0, 0, 12, 10], [0, 0, 10, 10]]]
    result = _assign([priors], gts, [[0, 0, 0], [1, 2, 3]],
                     valid=[[False] * 3, [True] * 3])
    assert result.gt_inds.tolist() == [[-1] * 8, [0, 1] + [-1] * 6]
    assert result.labels.tolist() == [[4] * 8, [1, 2] + [4] * 6]
    assert result.max_overlaps.tolist() == [[0] * 8, [1, 1] + [0] * 6]


def test_invalid_priors_are_never_positive():
    """The conflict scene with p0 off the image's padded area: p1 alone is positive."""
    priors = [[0, 0, 10, 10], [0, 0, 12, 10]] + [FAR] * 6
    prior_valid = torch.tensor([[False] + [True] * 7])
    result = _assign([priors], [[[0, 0, 10, 10]]], [[1]], prior_valid=prior_valid)
    # Candidates {0.833, 0 x 6}: threshold 0.119 + 0.315 = 0.434 < 0.833.
    assert result.gt_inds.tolist() == [[-1, 0] + [-1] * 6]


def test_dynamic_quality_with_alpha():
    """DDOD's variant: quality = sigmoid(score)^(1 - α) · IoU(predicted box, gt)^α.

    gt [0, 0, 10, 10] label 1, α = 0.5. Prior p0's prediction is off the gt (IoU 0), p1's
    prediction equals the gt with logit 0 (sigmoid 0.5): quality sqrt(0.5) = 0.7071; the six far
    priors predict far boxes. Threshold 0.0884 + 0.25 = 0.338: p1 is positive although p0
    is the better prior by IoU.
    """
    priors = [[0, 0, 10, 10], [0, 0, 12, 10]] + [FAR] * 6
    pred_bboxes = torch.tensor([[[20, 20, 30, 30], [0, 0, 10, 10]] + [FAR] * 6])
    pred_scores = torch.full((1, 8, 4), -5.0)
    pred_scores[0, 1, 1] = 0.0
    result = _assign([priors], [[[0, 0, 10, 10]]], [[1]], alpha=0.5, pred_scores=pred_scores,
                     pred_bboxes=pred_bboxes)
    assert result.gt_inds.tolist() == [[-1, 0] + [-1] * 6]
    torch.testing.assert_close(result.max_overlaps[0, 1], torch.tensor(0.5 ** 0.5))


def test_no_gt_at_all_and_bad_input():
    result = _assign([[[0, 0, 10, 10]]], [[], []], [[], []])
    assert result.gt_inds.tolist() == [[-1], [-1]] and result.labels.tolist() == [[4], [4]]
    with pytest.raises(ValueError, match='needs pred_scores and pred_bboxes'):
        _assign([[[0, 0, 10, 10]]], [[[0, 0, 10, 10]]], [[1]], alpha=0.5)
    with pytest.raises(ValueError, match='topk must be a positive int'):
        TASK_UTILS.build(dict(type='ATSSAssigner', topk=0))
