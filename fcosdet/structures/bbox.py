"""Pairwise and aligned IoU / GIoU of axis-aligned boxes.

Boxes are absolute-pixel ``(x1, y1, x2, y2)``. Shape letters: ``A`` boxes of the first set,
``B`` boxes of the second set, ``...`` any broadcastable leading (batch) dimensions.
"""
import torch
from torch import Tensor

_MODES = ('iou', 'giou')


def _check_boxes(bboxes: Tensor, name: str) -> None:
    """Raise a ValueError unless ``bboxes`` has at least two dims and a last dim of 4."""
    if bboxes.dim() < 2 or bboxes.shape[-1] != 4:
        raise ValueError(f'bbox_overlaps: {name} must have shape [..., n, 4], '
                         f'got {tuple(bboxes.shape)}')


def _area(bboxes: Tensor) -> Tensor:
    """Area of boxes ``[..., 4]`` -> ``[...]`` (negative widths count as given)."""
    return (bboxes[..., 2] - bboxes[..., 0]) * (bboxes[..., 3] - bboxes[..., 1])


def bbox_overlaps(bboxes1: Tensor, bboxes2: Tensor, mode: str = 'iou',
                  is_aligned: bool = False, eps: float = 1e-6) -> Tensor:
    """IoU or generalised IoU between two sets of boxes.

    Args:
        bboxes1: Boxes ``[..., A, 4]``.
        bboxes2: Boxes ``[..., B, 4]``; with ``is_aligned`` B must equal A.
        mode: ``'iou'`` or ``'giou'`` (IoU − (enclosing area − union) / enclosing area).
        is_aligned: Compare box i of ``bboxes1`` with box i of ``bboxes2`` only.
        eps: Lower bound of the union and enclosing areas (avoids division by zero).

    Returns:
        ``[..., A, B]`` pairwise overlaps, or ``[..., A]`` when ``is_aligned``.

    Raises:
        ValueError: unknown ``mode`` or boxes not shaped ``[..., n, 4]``.
    """
    if mode not in _MODES:
        raise ValueError(f"bbox_overlaps: mode must be one of {_MODES}, got '{mode}'")
    _check_boxes(bboxes1, 'bboxes1')
    _check_boxes(bboxes2, 'bboxes2')
    if is_aligned and bboxes1.shape[-2] != bboxes2.shape[-2]:
        raise ValueError('bbox_overlaps: is_aligned needs as many boxes in both sets, got '
                         f'{bboxes1.shape[-2]} and {bboxes2.shape[-2]}')
    if not is_aligned:
        # [..., A, 1, 4] against [..., 1, B, 4] broadcasts to all pairs.
        bboxes1 = bboxes1.unsqueeze(-2)
        bboxes2 = bboxes2.unsqueeze(-3)
    area1 = _area(bboxes1)
    area2 = _area(bboxes2)
    inter_lt = torch.maximum(bboxes1[..., :2], bboxes2[..., :2])
    inter_rb = torch.minimum(bboxes1[..., 2:], bboxes2[..., 2:])
    inter_wh = (inter_rb - inter_lt).clamp(min=0)
    overlap = inter_wh[..., 0] * inter_wh[..., 1]
    union = (area1 + area2 - overlap).clamp(min=eps)
    ious = overlap / union
    if mode == 'iou':
        return ious
    enclose_lt = torch.minimum(bboxes1[..., :2], bboxes2[..., :2])
    enclose_rb = torch.maximum(bboxes1[..., 2:], bboxes2[..., 2:])
    enclose_wh = (enclose_rb - enclose_lt).clamp(min=0)
    enclose_area = (enclose_wh[..., 0] * enclose_wh[..., 1]).clamp(min=eps)
    return ious - (enclose_area - union) / enclose_area

