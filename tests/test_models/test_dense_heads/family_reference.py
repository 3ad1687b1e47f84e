"""Per-image reference of ATSS assignment and of the ATSS / GFL losses, written the way
MMDetection computes them (a loop over images, over gts and over levels; PseudoSampler's
``max(num_pos, 1)`` per image), independently of fcosdet's batched code. Shared by the head
tests; ties in distance are avoided by the scenes (random float boxes)."""
import math
import statistics

import torch

from fcosdet.structures.bbox import bbox_overlaps

GN2 = dict(type='GN', num_groups=2, requires_grad=True)
TINY_ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=2,
                    scales_per_octave=1, strides=[8, 16])
TRAIN_CFG = dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1,
                 debug=False)


def valid_rows(levels, sizes, strides, pad_shape):
    """Per level, bool [R_l]: the anchor's cell lies on the image's padded area."""
    flags = []
    for (height, width), stride in zip(sizes, strides):
        rows = min(math.ceil(pad_shape[0] / stride), height)
        cols = min(math.ceil(pad_shape[1] / stride), width)
        grid = torch.zeros(height, width, dtype=torch.bool)
        grid[:rows, :cols] = True
        flags.append(grid.reshape(-1))
    return flags


def atss_assign(levels, valid, gt_bboxes, topk=9):
    """Assigned gt index per anchor (-1 background) of one image, gt by gt."""
    anchors = torch.cat(levels)
    flat_valid = torch.cat(valid)
    num_anchors = len(anchors)
    best = torch.full((num_anchors,), -1.0, dtype=torch.float64)
    assigned = torch.full((num_anchors,), -1, dtype=torch.long)
    ious_all = bbox_overlaps(anchors, gt_bboxes) if len(gt_bboxes) else None
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    for j, box in enumerate(gt_bboxes):
        gt_centre = (box[:2] + box[2:]) / 2
        candidates, start = [], 0
        for level, flags in zip(levels, valid):
            idx = torch.nonzero(flags).reshape(-1) + start
            dist = ((centres[idx] - gt_centre) ** 2).sum(1).sqrt()
            order = torch.argsort(dist)[:topk]
            candidates += idx[order].tolist()
            start += len(level)
        values = [float(ious_all[i, j]) for i in candidates]
        threshold = statistics.mean(values) + statistics.stdev(values)
        for i, value in zip(candidates, values):
            cx, cy = centres[i].tolist()
            inside = min(cx - box[0], cy - box[1], box[2] - cx, box[3] - cy) > 0.01
            # Strictly higher wins: on equal IoU the earlier (lower-index) gt stays.
            if value >= threshold and inside and flat_valid[i] and value > best[i]:
                best[i], assigned[i] = value, j
    return assigned


def focal_sum(logits, labels, weights):
    """Sigmoid focal loss (alpha 0.25, gamma 2), summed with per-row weights."""
    onehot = torch.zeros_like(logits)
    pos = labels >= 0
    onehot[pos, labels[pos]] = 1.0
    p = logits.sigmoid()
    loss = torch.where(onehot.bool(), -0.25 * (1 - p) ** 2 * torch.log(p),
                       -0.75 * p ** 2 * torch.log(1 - p))
    return (loss.sum(1) * weights).sum()


def check_against_reference(losses, expected, outs):
    """Same keys and values (relative 1e-5) as the reference; every output gets a gradient."""
    assert set(losses) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value, rtol=1e-5, atol=1e-7)
    sum(losses.values()).backward()
    assert all(m.grad is not None for maps in outs for m in maps)
