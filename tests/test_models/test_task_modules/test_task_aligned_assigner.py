"""TaskAlignedAssigner on a hand-worked scene: metrics, top-k, the centre rule, conflicts (IoU
decides, as MMDetection), padded gt, invalid priors, ties, and the normalised targets."""
import pytest
import torch

from fcosdet.models.task_modules import TaskAlignedAssigner, normalized_alignment
from fcosdet.registry import TASK_UTILS
from fcosdet.utils import register_all_modules

# gt A = [0, 0, 10, 10] (class 0), gt B = [5, 0, 15, 10] (class 1).
GTS = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]],
                    [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])  # image 1: no gt
GT_LABELS = torch.tensor([[0, 1], [0, 0]])
GT_VALID = torch.tensor([[True, True], [False, False]])
# Five priors on two levels; their centres (x, 5) are x = 2, 7, 8 | 30, 9.
PRIORS = [torch.tensor([[0.0, 3, 4, 7], [5, 3, 9, 7], [6, 3, 10, 7]]),
          torch.tensor([[28.0, 3, 32, 7], [7, 3, 11, 7]])]
# Predicted boxes and their IoUs with (A, B):
#   p0 [0, 0, 10, 8]: (0.8, 2/7)    p1 [5, 0, 15, 10]: (1/3, 1)    p2 [0, 0, 10, 5]: (0.5, 0.2)
#   p3 [0, 0, 10, 10]: (1, 1/3)     p4 [4, 0, 10, 10]: (0.6, 5/11)
BOXES = torch.tensor([[0.0, 0, 10, 8], [5, 0, 15, 10], [0, 0, 10, 5], [0, 0, 10, 10],
                      [4, 0, 10, 10]])
SCORES = torch.tensor([[0.8, 0.1], [0.2, 0.9], [0.5, 0.5], [0.9, 0.9], [0.05, 0.9]])
# t = s · u^6 (alpha 1, beta 6), per prior for (A, B):
T_A = [0.8 * 0.8 ** 6, 0.2 * (1 / 3) ** 6, 0.5 * 0.5 ** 6, 0.9, 0.05 * 0.6 ** 6]
T_B = [0.1 * (2 / 7) ** 6, 0.9, 0.5 * 0.2 ** 6, 0.9 * (1 / 3) ** 6, 0.9 * (5 / 11) ** 6]


def assign(topk: int = 4, prior_valid=None, scores=SCORES, boxes=BOXES):
    assigner = TaskAlignedAssigner(topk=topk)
    return assigner.assign(PRIORS, GTS, GT_LABELS, GT_VALID, num_classes=2,
                           prior_valid=prior_valid, pred_scores=scores.expand(2, -1, -1),
                           pred_bboxes=boxes.expand(2, -1, -1))


def test_hand_worked_scene():
    """Top-4 by t: A -> p3, p0, p2, p4; B -> p1, p4, p3, p0. p3's centre (30, 5) lies in
    neither box and p0's (2, 5) not in B, so A has p0, p2, p4 and B has p1, p4. p4 is claimed
    by both: its metric is higher for B (0.0079 > 0.0023) but its IoU higher for A (0.6 >
    5/11), and IoU decides (MMDetection's rule), so p4 goes to A. Image 1 (no gt) is all
    background."""
    result = assign()
    assert result.gt_inds.tolist() == [[0, 1, 0, -1, 0], [-1] * 5]
    assert result.labels.tolist() == [[0, 1, 0, 2, 0], [2] * 5]
    torch.testing.assert_close(result.max_overlaps[0], torch.tensor([0.8, 1.0, 0.5, 0.0, 0.6]))
    expected = torch.tensor([T_A[0], T_B[1], T_A[2], 0.0, T_A[4]])
    torch.testing.assert_close(result.assign_metrics[0], expected)
    assert T_B[4] > T_A[4]  # the conflict really goes against the metric
    torch.testing.assert_close(result.bbox_targets[0, 4], GTS[0, 0])
    assert not result.pos_mask[1].any() and (result.assign_metrics[1] == 0).all()


def test_candidates_are_taken_before_the_centre_rule():
    """With top-1, A's best prior is p3, whose centre is outside: A gets no positive at all
    (MMDetection ranks all priors first, then drops those outside)."""
    result = assign(topk=1)
    assert result.gt_inds[0].tolist() == [-1, 1, -1, -1, -1]


def test_invalid_priors_are_skipped():
    """p3 off the image: A's top 4 become p0, p2, p4, p1; p1 (IoU 1/3 with A, 1 with B) stays
    with B."""
    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[:, 3] = False
    assert assign(prior_valid=valid).gt_inds[0].tolist() == [0, 1, 0, -1, 0]
    valid[:, 2] = False  # and p2 invalid too: never positive
    assert assign(prior_valid=valid).gt_inds[0].tolist() == [0, 1, -1, -1, 0]


def test_equal_metrics_take_the_lowest_prior_index():
    """p0, p1, p2 predict the same box with the same score for A: top-2 takes p0 and p1; so
    does top-3 when p3 (above them) takes the first place."""
    boxes = BOXES.clone()
    boxes[:3] = torch.tensor([0.0, 0, 10, 8])
    scores = SCORES.clone()
    scores[:3] = torch.tensor([0.8, 0.0])
    assert assign(topk=3, scores=scores, boxes=boxes).gt_inds[0, :3].tolist() == [0, 0, -1]
    scores[3] = 0.0  # p3 out of the race
    assert assign(topk=2, scores=scores, boxes=boxes).gt_inds[0, :3].tolist() == [0, 0, -1]


def test_zero_metric_is_never_positive():
    """A prior whose predicted box misses the gt (IoU 0) is not positive even in the top-k."""
    boxes = BOXES.clone()
    boxes[:] = torch.tensor([100.0, 100, 110, 110])
    assert (assign(topk=13, boxes=boxes).gt_inds == -1).all()


def test_normalised_targets():
    """A's positives p0, p2, p4: t / max t · max IoU with max t = t(p0), max IoU = 0.8;
    B's only positive p1: t / t · 1 = 1."""
    result = assign()
    norm = normalized_alignment(result.gt_inds, result.assign_metrics, result.max_overlaps)
    max_t = T_A[0] + 1e-7  # MMDetection's eps
    expected = torch.tensor([T_A[0] / max_t * 0.8, 0.9 / (0.9 + 1e-7), T_A[2] / max_t * 0.8,
                             0.0, T_A[4] / max_t * 0.8])
    torch.testing.assert_close(norm[0], expected)
    assert (norm[1] == 0).all()


def test_no_gt_in_the_batch():
    assigner = TaskAlignedAssigner()
    result = assigner.assign(PRIORS, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long),
                             torch.zeros(2, 0, dtype=torch.bool), 2,
                             pred_scores=SCORES.expand(2, -1, -1),
                             pred_bboxes=BOXES.expand(2, -1, -1))
    assert (result.gt_inds == -1).all() and (result.labels == 2).all()
    assert result.assign_metrics.shape == (2, 5) and (result.assign_metrics == 0).all()


def test_config_and_bad_input():
    register_all_modules()
    assert TASK_UTILS.build(dict(type='TaskAlignedAssigner', topk=13)).topk == 13
    with pytest.raises(ValueError, match='topk must be a positive int, got 0'):
        TaskAlignedAssigner(topk=0)
    with pytest.raises(ValueError, match='needs pred_scores and pred_bboxes'):
        TaskAlignedAssigner().assign(PRIORS, GTS, GT_LABELS, GT_VALID, 2)
