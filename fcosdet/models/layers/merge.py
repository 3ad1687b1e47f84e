"""Merging the detections of overlapping views (sliced inference): class-aware NMS or NMM.

Shape letters: K detections, K' merged detections. Boxes are absolute-pixel
``(x1, y1, x2, y2)``.

- ``'nms'``: class-aware greedy NMS at IoU > threshold; the kept boxes are unchanged.
- ``'nmm'``: greedy non-maximum *merging* (SAHI's GREEDYNMM with its default match metric,
  intersection over the smaller box, IoS). By decreasing score, the best box not yet used
  takes every unused box of its class whose IoS with it is above the threshold; the group
  becomes one detection: the box enclosing the group, the best score, the class. An object cut
  by a tile border is seen as two partial boxes by the two tiles; NMS keeps one part, NMM
  glues the parts back together. (SAHI re-checks each match against the growing merged box;
  here every match is against the group's best box, so a group is known before it is merged.)
"""
from functools import partial

import numpy as np
import torch
from torch import Tensor

from fcosdet.structures.slicing import MERGE_MODES

from .nms import batched_nms


def pairwise_ios(bboxes: Tensor) -> Tensor:
    """Intersection over the smaller box's area of every pair: ``[K, K]`` (0 for empty boxes)."""
    lt = torch.maximum(bboxes[:, None, :2], bboxes[None, :, :2])
    rb = torch.minimum(bboxes[:, None, 2:], bboxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area = (bboxes[:, 2:] - bboxes[:, :2]).clamp(min=0).prod(dim=1)
    smaller = torch.minimum(area[:, None], area[None, :])
    return torch.where(smaller > 0, inter / smaller.clamp(min=1e-12), torch.zeros_like(inter))


def _nmm_groups(bboxes: Tensor, scores: Tensor, labels: Tensor,
                threshold: float) -> tuple[Tensor, Tensor]:
    """Greedy NMM groups by decreasing score: the group index of every box ``[K]`` and the
    index of each group's best box ``[K']``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes, cls = bboxes[order].float(), labels[order]
    match = ((pairwise_ios(boxes) > threshold) & (cls[:, None] == cls[None, :])).cpu().numpy()
    group = np.full(len(order), -1)
    leads = []
    for i in range(len(order)):  # sequential by nature: a box joins the first group it matches
        if group[i] >= 0:
            continue
        group[match[i] & (group < 0)] = len(leads)
        group[i] = len(leads)
        leads.append(i)
    order_np = order.cpu().numpy()
    box_group = np.empty(len(order), dtype=np.int64)
    box_group[order_np] = group
    as_tensor = partial(torch.as_tensor, dtype=torch.long, device=bboxes.device)
    return as_tensor(box_group), order[as_tensor(leads)]


def merge_detections(bboxes: Tensor, scores: Tensor, labels: Tensor, mode: str = 'nms',
                     threshold: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """Merge detections of overlapping views of one image (see the module doc).

    Args:
        bboxes: ``[K, 4]`` boxes.
        scores: ``[K]`` scores.
        labels: ``[K]`` class labels.
        mode: ``'nms'`` (IoU > threshold suppresses) or ``'nmm'`` (IoS > threshold merges).
        threshold: Match threshold in [0, 1].

    Returns:
        ``bboxes [K', 4]``, ``scores [K']``, ``labels [K']``, by decreasing score.

    Raises:
        ValueError: An unknown ``mode`` or a threshold outside [0, 1].
    """
    if mode not in MERGE_MODES:
        raise ValueError(f'merge mode must be one of {MERGE_MODES}, got {mode!r}')
    if not 0 <= threshold <= 1:
        raise ValueError(f'merge threshold must be in [0, 1], got {threshold!r}')
    if mode == 'nms':
        keep = batched_nms(bboxes, scores, labels, threshold)
        return bboxes[keep], scores[keep], labels[keep]
    group, lead = _nmm_groups(bboxes, scores, labels, threshold)
    index = group[:, None].expand(-1, 2)
    out = bboxes.new_zeros((len(lead), 4))  # each group's enclosing box, in one scatter per side
    out[:, :2] = out[:, :2].scatter_reduce(0, index, bboxes[:, :2], 'amin', include_self=False)
    out[:, 2:] = out[:, 2:].scatter_reduce(0, index, bboxes[:, 2:], 'amax', include_self=False)
    return out, scores[lead], labels[lead]
