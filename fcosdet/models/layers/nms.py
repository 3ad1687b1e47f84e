"""Greedy non-maximum suppression in pure PyTorch, without a Python loop over boxes.

Shape letters: ``K`` boxes (detections), ``K'`` kept boxes, ``E`` suppression pairs. Boxes are
``(x1, y1, x2, y2)``.

Greedy NMS visits boxes by decreasing score and keeps a box unless a kept higher-scoring box
overlaps it by IoU > threshold. With boxes sorted, ``keep[j] = not any(keep[i] for every pair
(i, j), i < j, that overlaps too much)``. Each entry depends only on earlier ones, so the rule
has exactly one fixed point, the greedy result, and iterating it from "keep all" fixes at least
one more leading entry per step. In practice it stops after a few steps (the length of the
longest suppression chain), each O(E) work on the list of overlapping pairs.
"""
import torch
from torch import Tensor

from fcosdet.structures.bbox import bbox_overlaps

# Rows of the IoU matrix computed at once; bounds the peak memory for large K.
_CHUNK = 512


def _check(boxes: Tensor, scores: Tensor, name: str) -> None:
    """Raise a ValueError unless boxes are ``[K, 4]`` and scores ``[K]``."""
    if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f'{name}: boxes must be [K, 4] and scores [K], got '
                         f'{tuple(boxes.shape)} and {tuple(scores.shape)}')


def _suppression_pairs(boxes: Tensor, groups: Tensor,
                       iou_threshold: float) -> tuple[Tensor, Tensor]:
    """Pairs ``(i, j)``, ``i < j``, of boxes of one group with IoU > threshold.

    Boxes are sorted by group, then by decreasing score, so that the boxes a row can suppress
    are a contiguous range: from the row itself to the end of its group. Each chunk of rows
    therefore only needs the IoU with the columns up to the end of its last row's group, which
    keeps the work near ``sum(group size ** 2) / 2`` instead of ``K ** 2``.

    Args:
        boxes: ``[K, 4]`` boxes sorted by (group, decreasing score).
        groups: ``[K]`` sorted group of each box.
        iou_threshold: IoU above which box i suppresses box j.

    Returns:
        ``rows [E]`` and ``cols [E]`` long indices into the sorted boxes.
    """
    num_boxes = boxes.shape[0]
    positions = torch.arange(num_boxes, device=boxes.device)
    group_ends = torch.searchsorted(groups, groups, right=True)  # [K] end of each box's group
    rows, cols = [], []
    for start in range(0, num_boxes, _CHUNK):
        stop = min(start + _CHUNK, num_boxes)
        col_stop = int(group_ends[stop - 1])
        pairs = bbox_overlaps(boxes[start:stop], boxes[start:col_stop]) > iou_threshold
        col_ids = positions[start:col_stop]
        pairs &= col_ids[None, :] > positions[start:stop, None]
        pairs &= col_ids[None, :] < group_ends[start:stop, None]
        block_rows, block_cols = pairs.nonzero(as_tuple=True)
        rows.append(block_rows + start)
        cols.append(block_cols + start)
    return torch.cat(rows), torch.cat(cols)


def _greedy_keep(num_boxes: int, rows: Tensor, cols: Tensor) -> Tensor:
    """Bool ``[K]`` greedy keep mask of sorted boxes from their ``[E]`` suppression pairs."""
    keep = torch.ones(num_boxes, dtype=torch.bool, device=rows.device)
    while True:
        hits = torch.zeros(num_boxes, dtype=torch.long, device=rows.device)
        hits.index_add_(0, cols, keep[rows].long())
        new_keep = hits == 0
        if torch.equal(new_keep, keep):
            return keep
        keep = new_keep


def _nms(boxes: Tensor, scores: Tensor, groups: Tensor | None, iou_threshold: float) -> Tensor:
    """Greedy NMS within groups; see ``nms`` and ``batched_nms``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    if order.numel() == 0:
        return order
    if groups is None:
        groups = torch.zeros_like(order)
    # Stable sort by group keeps the score order inside each group.
    order = order[torch.sort(groups[order], stable=True).indices]
    rows, cols = _suppression_pairs(boxes[order].float(), groups[order], iou_threshold)
    kept = order[_greedy_keep(order.numel(), rows, cols)]
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS.

    Args:
        boxes: ``[K, 4]`` boxes.
        scores: ``[K]`` scores.
        iou_threshold: A box is suppressed when its IoU with a kept higher-scoring box is
            greater than this.

    Returns:
        Long ``[K']`` indices of the kept boxes, by decreasing score (equal scores: lower
        index first).
    """
    _check(boxes, scores, 'nms')
    return _nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes with different ``idxs`` never suppress each other.

    Args:
        boxes: ``[K, 4]`` boxes.
        scores: ``[K]`` scores.
        idxs: ``[K]`` integer group (class) of each box.
        iou_threshold: IoU above which a lower-scoring box of the same group is suppressed.

    Returns:
        Long ``[K']`` indices of the kept boxes, by decreasing score (equal scores: lower
        index first).
    """
    _check(boxes, scores, 'batched_nms')
    if idxs.shape != scores.shape:
        raise ValueError(f'batched_nms: idxs must be [K] like scores, got {tuple(idxs.shape)}')
    return _nms(boxes, scores, idxs, iou_threshold)
