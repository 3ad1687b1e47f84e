import math
import random

import pytest
import torch

from fcosdet.models.task_modules import FCOSAssigner, centerness_target
from fcosdet.registry import TASK_UTILS

NUM_CLASSES = 5


def _assign(assigner, points, boxes, labels, valid=None):
    """Assign one image; points is a list of per-level lists of (x, y)."""
    level_points = [torch.tensor(p, dtype=torch.float64).reshape(-1, 2) for p in points]
    gt_bboxes = torch.tensor(boxes, dtype=torch.float64).reshape(1, -1, 4)
    gt_labels = torch.tensor(labels, dtype=torch.long).reshape(1, -1)
    gt_valid = (torch.ones_like(gt_labels, dtype=torch.bool) if valid is None
                else torch.tensor(valid).reshape(1, -1))
    labels_out, targets = assigner.assign(level_points, gt_bboxes, gt_labels, gt_valid,
                                          NUM_CLASSES)
    return labels_out[0].tolist(), targets[0].tolist()


def _one_level(**kwargs):
    return FCOSAssigner(strides=(8,), regress_ranges=((-1, 1e8),), **kwargs)


def test_nested_boxes_smaller_area_wins():
    # Big box first, so the smaller area (not the lower index) must decide.
    labels, targets = _assign(_one_level(), [[(10, 10), (30, 30)]],
                              [[0, 0, 40, 40], [5, 5, 20, 20]], [1, 2])
    assert labels == [2, 1]
    assert targets == [[5, 5, 10, 10], [30, 30, 10, 10]]


def test_point_on_edge_is_background():
    labels, targets = _assign(_one_level(), [[(0, 10), (20, 10), (10, 20), (10, 10)]],
                              [[0, 0, 20, 20]], [3])
    assert labels == [NUM_CLASSES] * 3 + [3]
    assert targets[:3] == [[0, 0, 0, 0]] * 3
    assert targets[3] == [10, 10, 10, 10]


@pytest.mark.parametrize('max_dist, accepted', [
    (63.5, [True, False, False]),
    (64.0, [True, True, False]),
    (64.5, [False, True, False]),
    (128.0, [False, True, True]),
    (128.5, [False, False, True]),
])
def test_regress_range_bounds_are_inclusive(max_dist, accepted):
    assigner = FCOSAssigner(strides=(8, 16, 32),
                            regress_ranges=((-1, 64), (64, 128), (128, 256)))
    # The same point on every level; l = max_dist is its largest distance (t = b = 10, r = 1).
    point = (max_dist, 10)
    labels, targets = _assign(assigner, [[point], [point], [point]],
                              [[0, 0, max_dist + 1, 20]], [4])
    assert labels == [4 if ok else NUM_CLASSES for ok in accepted]
    for ok, target in zip(accepted, targets):
        assert target == ([max_dist, 10, 1, 10] if ok else [0, 0, 0, 0])


def test_center_sampling_region_clipped_by_thin_box():
    box = [[0, 0, 100, 4]]  # centre (50, 2); region at stride 8: x in (38, 62), y clipped to (0, 4)
    points = [(50, 2), (50, 3.9), (50, 5), (37, 2), (61, 2), (62, 2), (30, 2)]
    sampled = FCOSAssigner(strides=(8, 16), regress_ranges=((-1, 1e8), (-1, 1e8)),
                           center_sampling=True, center_sample_radius=1.5)
    labels, _ = _assign(sampled, [points, [(30, 2)]], box, [0])
    # (50, 5) is within 12 px of the centre but outside the thin box; (30, 2) is too far at
    # stride 8 yet inside the radius-24 region of stride 16 (the last, level-1 point).
    assert labels == [0, 0, NUM_CLASSES, NUM_CLASSES, 0, NUM_CLASSES, NUM_CLASSES, 0]
    plain, _ = _assign(FCOSAssigner(strides=(8, 16), regress_ranges=((-1, 1e8), (-1, 1e8))),
                       [points, [(30, 2)]], box, [0])
    assert plain == [0, 0, NUM_CLASSES, 0, 0, 0, 0, 0]


def test_equal_area_tie_goes_to_lowest_index():
    boxes = [[0, 0, 20, 10], [0, 0, 10, 20]]
    labels, targets = _assign(_one_level(), [[(5, 5)]], boxes, [3, 1])
    assert labels == [3] and targets == [[5, 5, 15, 5]]
    labels, targets = _assign(_one_level(), [[(5, 5)]], boxes[::-1], [1, 3])
    assert labels == [1] and targets == [[5, 5, 5, 15]]


def test_norm_on_bbox_divides_by_level_stride():
    assigner = FCOSAssigner(strides=(8, 16), regress_ranges=((-1, 64), (64, 128)),
                            norm_on_bbox=True)
    labels, targets = _assign(assigner, [[(8, 8)], [(24, 24)]],
                              [[0, 0, 100, 100], [4, 4, 20, 20]], [0, 1])
    assert labels == [1, 0]
    assert targets == [[0.5, 0.5, 1.5, 1.5], [1.5, 1.5, 76 / 16, 76 / 16]]


def test_empty_image_in_batch_and_invalid_padding_ignored():
    assigner = _one_level()
    points = [torch.tensor([[5.0, 5.0], [15.0, 5.0]])]
    # Image 1's padding row covers both points but is marked invalid.
    gt_bboxes = torch.tensor([[[0.0, 0, 10, 10]], [[0.0, 0, 20, 20]]])
    gt_labels = torch.tensor([[2], [4]])
    gt_valid = torch.tensor([[True], [False]])
    labels, targets = assigner.assign(points, gt_bboxes, gt_labels, gt_valid, NUM_CLASSES)
    assert labels.tolist() == [[2, NUM_CLASSES], [NUM_CLASSES, NUM_CLASSES]]
    assert targets.tolist() == [[[5, 5, 5, 5], [0] * 4], [[0] * 4, [0] * 4]]


def test_batch_without_any_box():
    assigner = TASK_UTILS.build(dict(type='FCOSAssigner'))
    points = [torch.rand(4, 2) * 100 for _ in range(5)]
    labels, targets = assigner.assign(points, torch.zeros(3, 0, 4),
                                      torch.zeros(3, 0, dtype=torch.long),
                                      torch.zeros(3, 0, dtype=torch.bool), NUM_CLASSES)
    assert labels.shape == (3, 20) and labels.dtype == torch.long
    assert (labels == NUM_CLASSES).all()
    assert targets.shape == (3, 20, 4) and (targets == 0).all()


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match='2 strides but 1 regress_ranges'):
        FCOSAssigner(strides=(8, 16), regress_ranges=((-1, 64),))
    with pytest.raises(ValueError, match='lower <= upper'):
        FCOSAssigner(strides=(8,), regress_ranges=((64, -1),))
    with pytest.raises(ValueError, match='points of 1 levels for 5 strides'):
        FCOSAssigner().assign([torch.zeros(1, 2)], torch.zeros(1, 0, 4),
                              torch.zeros(1, 0, dtype=torch.long),
                              torch.zeros(1, 0, dtype=torch.bool), 2)


def _reference_assign(level_points, strides, ranges, boxes, labels, valid, center_sampling,
                      radius, norm_on_bbox):
    """Per-point, per-box Python loop written straight from the FCOS rules."""
    out_labels, out_targets = [], []
    for points, stride, (lower, upper) in zip(level_points, strides, ranges):
        for x, y in points:
            best, best_area = None, math.inf
            for m, ((x1, y1, x2, y2), ok) in enumerate(zip(boxes, valid)):
                if not ok:
                    continue
                dists = (x - x1, y - y1, x2 - x, y2 - y)
                if center_sampling:
                    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                    rx1, ry1 = max(cx - stride * radius, x1), max(cy - stride * radius, y1)
                    rx2, ry2 = min(cx + stride * radius, x2), min(cy + stride * radius, y2)
                    inside = min(x - rx1, y - ry1, rx2 - x, ry2 - y) > 0
                else:
                    inside = min(dists) > 0
                area = (x2 - x1) * (y2 - y1)
                if inside and lower <= max(dists) <= upper and area < best_area:
                    best, best_area = m, area
            if best is None:
                out_labels.append(NUM_CLASSES)
                out_targets.append([0.0] * 4)
            else:
                x1, y1, x2, y2 = boxes[best]
                scale = stride if norm_on_bbox else 1
                out_labels.append(labels[best])
                out_targets.append([(x - x1) / scale, (y - y1) / scale, (x2 - x) / scale,
                                    (y2 - y) / scale])
    return out_labels, out_targets


@pytest.mark.parametrize('center_sampling, norm_on_bbox', [(False, False), (True, True)])
def test_matches_bruteforce_reference(center_sampling, norm_on_bbox):
    rng = random.Random(3)
    strides, ranges = (4, 8, 16), ((-1, 24), (24, 48), (48, 1e8))
    sizes = [(12, 10), (6, 5), (3, 3)]
    level_points = [[((j + 0.5) * s, (i + 0.5) * s) for i in range(h) for j in range(w)]
                    for s, (h, w) in zip(strides, sizes)]
    batch_boxes, batch_labels, batch_valid = [], [], []
    for _ in range(3):
        boxes = []
        for _ in range(10):  # integer corners: exact arithmetic, edge and range ties happen
            x1, y1 = rng.randint(0, 36), rng.randint(0, 44)
            boxes.append([x1, y1, x1 + rng.randint(0, 40), y1 + rng.randint(0, 40)])
        batch_boxes.append(boxes)
        batch_labels.append([rng.randrange(NUM_CLASSES) for _ in boxes])
        batch_valid.append([rng.random() < 0.8 for _ in boxes])
    assigner = FCOSAssigner(strides, ranges, center_sampling=center_sampling,
                            center_sample_radius=1.5, norm_on_bbox=norm_on_bbox)
    labels, targets = assigner.assign(
        [torch.tensor(p, dtype=torch.float64) for p in level_points],
        torch.tensor(batch_boxes, dtype=torch.float64), torch.tensor(batch_labels),
        torch.tensor(batch_valid), NUM_CLASSES)
    num_positive = 0
    for n in range(3):
        ref_labels, ref_targets = _reference_assign(
            level_points, strides, ranges, batch_boxes[n], batch_labels[n], batch_valid[n],
            center_sampling, 1.5, norm_on_bbox)
        assert labels[n].tolist() == ref_labels
        assert torch.allclose(targets[n], torch.tensor(ref_targets, dtype=torch.float64))
        num_positive += sum(label != NUM_CLASSES for label in ref_labels)
    assert num_positive > 40  # the random scene really exercises the positives


def test_centerness_target_hand_values():
    targets = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    centerness = centerness_target(targets)
    assert centerness.shape == (3,)
    assert centerness[0].item() == pytest.approx(math.sqrt(1 / 3 * 2 / 4))
    assert centerness[1].item() == pytest.approx(1.0)
    assert centerness[2].item() == 0
    assert centerness_target(targets.reshape(3, 1, 4)).shape == (3, 1)
