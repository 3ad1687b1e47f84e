import pytest
import torch

from fcosdet.models import layers
from fcosdet.models.layers import nms as nms_module
from fcosdet.models.layers.nms import batched_nms, nms


def test_the_module_is_not_shadowed_by_its_function():
    assert layers.nms is nms_module and nms_module.nms is nms
    assert layers.batched_nms is batched_nms


def _iou(a, b):
    """Plain-Python IoU of two (x1, y1, x2, y2) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy_reference(boxes, scores, groups, threshold):
    """Textbook greedy NMS: visit by decreasing score, keep unless a kept box overlaps."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        if all(groups[i] != groups[k] or _iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


def _random_scene(seed, num_boxes, spread):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_boxes, 2, generator=gen, dtype=torch.float64) * spread
    wh = torch.rand(num_boxes, 2, generator=gen, dtype=torch.float64) * 20 + 1
    # Distinct scores: a random permutation, so the greedy order is unambiguous.
    scores = torch.randperm(num_boxes, generator=gen).double() / num_boxes
    return torch.cat([xy, xy + wh], dim=1), scores


def test_suppression_chain_hand_example():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 12, 12]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # IoU(A, B) = 81/119 > .5 suppresses B; IoU(A, C) = 64/136 < .5, and B is gone, so C stays
    # although IoU(B, C) = 81/119.
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]


def test_iou_equal_to_threshold_is_not_suppressed():
    boxes = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1]])  # IoU exactly 0.5
    scores = torch.tensor([0.2, 0.9])
    assert nms(boxes, scores, 0.5).tolist() == [1, 0]
    assert nms(boxes, scores, 0.49).tolist() == [1]


@pytest.mark.parametrize('seed, spread, threshold', [
    (0, 30, 0.5), (1, 30, 0.3), (2, 60, 0.6), (3, 15, 0.5), (4, 40, 0.7)])
def test_matches_greedy_reference(seed, spread, threshold):
    boxes, scores = _random_scene(seed, 120, spread)
    expected = _greedy_reference(boxes.tolist(), scores.tolist(), [0] * 120, threshold)
    kept = nms(boxes, scores, threshold)
    assert kept.dtype == torch.long
    assert kept.tolist() == expected
    assert 1 < len(expected) < 120  # overlaps really suppressed something


def test_row_chunking_gives_same_result(monkeypatch):
    boxes, scores = _random_scene(5, 90, 25)
    expected = _greedy_reference(boxes.tolist(), scores.tolist(), [0] * 90, 0.4)
    monkeypatch.setattr(nms_module, '_CHUNK', 7)
    assert nms(boxes, scores, 0.4).tolist() == expected


def test_empty_input():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    kept = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert kept.dtype == torch.long and kept.numel() == 0


def test_batched_nms_is_class_aware():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.5, 0.9, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [1, 2]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 2]), 0.5).tolist() == [1, 2, 0]
    assert batched_nms(boxes, scores, torch.tensor([3, 3, 3]), 0.5).tolist() == [1]


@pytest.mark.parametrize('seed', [6, 7, 8])
def test_batched_nms_matches_per_class_reference(seed):
    boxes, scores = _random_scene(seed, 150, 30)
    groups = torch.randint(0, 4, (150,), generator=torch.Generator().manual_seed(seed))
    expected = _greedy_reference(boxes.tolist(), scores.tolist(), groups.tolist(), 0.5)
    kept = batched_nms(boxes, scores, groups, 0.5)
    assert kept.tolist() == expected
    assert len(expected) > len(nms(boxes, scores, 0.5))  # classes protect each other


def test_bad_input_raises():
    with pytest.raises(ValueError, match='scores'):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match='idxs'):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5)
