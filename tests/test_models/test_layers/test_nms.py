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
    monkeypatch.setattr(nms_module, '_BLOCK', 8)
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


def _chain(num_boxes):
    """Boxes of side 10 shifted by 2: IoU 8/12 with the next box, 6/14 with the one after."""
    x = torch.arange(num_boxes, dtype=torch.float32) * 2
    boxes = torch.stack([x, torch.zeros(num_boxes), x + 10, torch.full((num_boxes,), 10.0)], 1)
    return boxes, torch.linspace(1, 0.01, num_boxes)


@pytest.mark.parametrize('block', [8, 64])
def test_long_suppression_chain(monkeypatch, block):
    # Box 2i suppresses 2i+1, which is therefore gone and cannot suppress 2i+2: the kept boxes
    # are the even ones, a chain of 2000 links (the old fixed-point loop ran 2000 steps).
    monkeypatch.setattr(nms_module, '_BLOCK', block)
    boxes, scores = _chain(2000)
    assert nms(boxes, scores, 0.5).tolist() == list(range(0, 2000, 2))
    # Reversed scores walk the chain from the other end.
    assert nms(boxes, scores.flip(0), 0.5).tolist() == list(range(1999, -1, -2))


def _crowd(seed, num_boxes):
    """Heavily overlapping boxes of one place, scores on a coarse grid (many ties)."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_boxes, 2, generator=gen, dtype=torch.float64) * 20 + 100
    wh = torch.rand(num_boxes, 2, generator=gen, dtype=torch.float64) * 20 + 60
    scores = (torch.rand(num_boxes, generator=gen, dtype=torch.float64) * 10).round() / 10
    return torch.cat([xy, xy + wh], dim=1), scores


@pytest.mark.parametrize('seed, threshold, block', [(0, 0.5, 64), (1, 0.8, 8), (2, 0.9, 16)])
def test_dense_crowd_with_ties_matches_greedy_reference(monkeypatch, seed, threshold, block):
    monkeypatch.setattr(nms_module, '_BLOCK', block)
    boxes, scores = _crowd(seed, 300)
    groups = torch.randint(0, 2, (300,), generator=torch.Generator().manual_seed(seed))
    expected = _greedy_reference(boxes.tolist(), scores.tolist(), [0] * 300, threshold)
    assert nms(boxes, scores, threshold).tolist() == expected
    assert 1 < len(expected) < 300
    expected = _greedy_reference(boxes.tolist(), scores.tolist(), groups.tolist(), threshold)
    assert batched_nms(boxes, scores, groups, threshold).tolist() == expected


def test_far_apart_tiles_are_skipped_but_negative_threshold_suppresses(monkeypatch):
    monkeypatch.setattr(nms_module, '_BLOCK', 8)
    boxes, scores = _random_scene(9, 40, 10)
    boxes[20:] += 1000  # the second half never touches the first
    expected = _greedy_reference(boxes.tolist(), scores.tolist(), [0] * 40, 0.3)
    assert nms(boxes, scores, 0.3).tolist() == expected
    # IoU 0 > -1: every box suppresses every later one, also across far-apart tiles.
    assert nms(boxes, scores, -1.0).tolist() == [int(scores.argmax())]


def test_compiled_op_is_used_when_importable(monkeypatch):
    calls = []

    def fake_compiled_nms(boxes, scores, iou_threshold):
        # Textbook greedy on float boxes, visiting by decreasing (distinct) score.
        calls.append(scores)
        kept = _greedy_reference(boxes.tolist(), scores.tolist(), [0] * len(scores),
                                 iou_threshold)
        return torch.tensor(kept, dtype=torch.long)

    monkeypatch.setattr(nms_module, '_COMPILED_NMS', fake_compiled_nms)
    boxes, scores = _crowd(3, 120)
    groups = torch.randint(0, 3, (120,), generator=torch.Generator().manual_seed(3)) * 7
    expected = _greedy_reference(boxes.tolist(), scores.tolist(), groups.tolist(), 0.6)
    assert batched_nms(boxes, scores, groups, 0.6).tolist() == expected
    # Ties were broken before the call: the op saw distinct scores.
    assert calls and calls[0].unique().numel() == 120
