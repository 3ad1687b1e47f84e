import math

import pytest
import torch

from fcosdet.structures.bbox import bbox_overlaps


def _boxes(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_iou_and_giou_hand_values():
    a = _boxes([0, 0, 10, 10], [0, 0, 1, 1])
    b = _boxes([5, 5, 15, 15], [2, 0, 3, 1])
    # overlap 25, union 175; enclosing box 15x15 = 225.
    iou = bbox_overlaps(a, b)
    assert iou.shape == (2, 2)
    assert iou[0, 0].item() == pytest.approx(25 / 175)
    assert iou[1, 1].item() == 0
    giou = bbox_overlaps(a, b, mode='giou', is_aligned=True)
    assert giou.shape == (2,)
    assert giou[0].item() == pytest.approx(1 / 7 - 50 / 225)
    # Disjoint unit boxes 1 apart: enclosing area 3, union 2.
    assert giou[1].item() == pytest.approx(-1 / 3)


def test_identical_boxes_give_one():
    a = _boxes([1, 2, 4, 8])
    assert bbox_overlaps(a, a).item() == pytest.approx(1.0)
    assert bbox_overlaps(a, a, mode='giou').item() == pytest.approx(1.0)


def test_aligned_is_diagonal_of_pairwise_and_batch_dims():
    torch.manual_seed(0)
    xy = torch.rand(2, 5, 2) * 10
    boxes1 = torch.cat([xy, xy + torch.rand(2, 5, 2) * 5 + 0.1], dim=-1)
    xy = torch.rand(2, 5, 2) * 10
    boxes2 = torch.cat([xy, xy + torch.rand(2, 5, 2) * 5 + 0.1], dim=-1)
    for mode in ('iou', 'giou'):
        pairwise = bbox_overlaps(boxes1, boxes2, mode=mode)
        assert pairwise.shape == (2, 5, 5)
        aligned = bbox_overlaps(boxes1, boxes2, mode=mode, is_aligned=True)
        assert torch.allclose(aligned, pairwise.diagonal(dim1=-2, dim2=-1))
        # Pairwise of image 1 alone equals the batched slice.
        assert torch.allclose(bbox_overlaps(boxes1[1], boxes2[1], mode=mode), pairwise[1])


def test_empty_sets():
    assert bbox_overlaps(torch.zeros(0, 4), torch.ones(3, 4)).shape == (0, 3)
    assert bbox_overlaps(torch.zeros(0, 4), torch.zeros(0, 4), is_aligned=True).shape == (0,)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="'diou'"):
        bbox_overlaps(torch.zeros(1, 4), torch.zeros(1, 4), mode='diou')
    with pytest.raises(ValueError, match='bboxes2'):
        bbox_overlaps(torch.zeros(1, 4), torch.zeros(1, 5))
    with pytest.raises(ValueError, match='is_aligned'):
        bbox_overlaps(torch.zeros(1, 4), torch.zeros(2, 4), is_aligned=True)


def test_zero_area_box_has_zero_iou_not_nan():
    point_box = _boxes([3, 3, 3, 3])
    iou = bbox_overlaps(point_box, point_box)
    assert not math.isnan(iou.item()) and iou.item() == 0
