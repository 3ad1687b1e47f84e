"""Detection confusion matrix with a background row and column (MMDetection's counting).

Shape letters: K detections of an image, M gt boxes of an image, C classes (index C is
background).
"""
from __future__ import annotations

import numpy as np
import torch

from fcosdet.structures import bbox_overlaps

from .det_results import ImageDets, ImageGt


def _ious(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of every detection with every gt box, float64 [K, M]."""
    return bbox_overlaps(torch.from_numpy(dets), torch.from_numpy(gts), eps=1e-12).numpy()


def image_confusion_matrix(dets: ImageDets, gt: ImageGt, num_classes: int,
                           score_thr: float = 0.3, tp_iou_thr: float = 0.5) -> np.ndarray:
    """Count one image into a ``[C + 1, C + 1]`` matrix (rows gt class, columns predicted class).

    The counting of MMDetection's ``confusion_matrix.py``: a detection with score >=
    ``score_thr`` adds 1 to ``[gt label, det label]`` for *every* gt box it overlaps with IoU >=
    ``tp_iou_thr`` (so it can count more than once), and 1 to ``[C, det label]`` (background
    row: a false positive on background) if it overlaps none. A gt box that no detection of its
    own class overlaps adds 1 to ``[gt label, C]`` (background column: missed). Unlike
    MMDetection, ignored (crowd) gt boxes take no part: a detection overlapping only ignored
    boxes counts nowhere, and an ignored box is never missed.

    Args:
        dets: Detections of the image (``bboxes`` [K, 4], ``scores`` [K], ``labels`` [K]).
        gt: Ground truth (``bboxes`` [M, 4], ``labels`` [M], ``ignore`` bool [M]).
        num_classes: C.
        score_thr: Detections below this score are dropped first.
        tp_iou_thr: IoU from which a detection and a gt box overlap.

    Returns:
        int64 [C + 1, C + 1].
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    keep = dets.scores >= score_thr
    det_boxes, det_labels = dets.bboxes[keep], dets.labels[keep]
    ious = _ious(det_boxes, gt.bboxes)
    overlaps = ious >= tp_iou_thr                                   # [K, M]
    counted = overlaps[:, ~gt.ignore]                               # [K, M'] non-ignored gts
    gt_labels = gt.labels[~gt.ignore]
    det_idx, gt_idx = np.nonzero(counted)
    np.add.at(matrix, (gt_labels[gt_idx], det_labels[det_idx]), 1)
    background = ~overlaps.any(axis=1)
    np.add.at(matrix, (num_classes, det_labels[background]), 1)
    same_class = det_labels[:, None] == gt_labels[None, :]          # [K, M']
    missed = ~(counted & same_class).any(axis=0)
    np.add.at(matrix, (gt_labels[missed], num_classes), 1)
    return matrix


def calculate_confusion_matrix(pairs: list[tuple[ImageDets, ImageGt]], num_classes: int,
                               score_thr: float = 0.3,
                               tp_iou_thr: float = 0.5) -> np.ndarray:
    """Sum :func:`image_confusion_matrix` over a dataset.

    Args:
        pairs: ``(detections, ground truth)`` of each image.
        num_classes: C.
        score_thr: Detections below this score are dropped.
        tp_iou_thr: IoU from which a detection and a gt box overlap.

    Returns:
        int64 [C + 1, C + 1]: rows gt class (last row: background, i.e. false positives),
        columns predicted class (last column: background, i.e. missed gt boxes).
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for dets, gt in pairs:
        matrix += image_confusion_matrix(dets, gt, num_classes, score_thr, tp_iou_thr)
    return matrix


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row as percentages of its sum (rows summing to 0 stay 0), float [C + 1, C + 1]."""
    sums = matrix.sum(axis=1, keepdims=True)
    return np.where(sums > 0, matrix / np.maximum(sums, 1) * 100, 0.0)


def format_confusion_matrix(matrix: np.ndarray, classes: list[str]) -> str:
    """The counts as a text table, one row per gt class plus ``background``."""
    names = [*classes, 'background']
    width = max(len(n) for n in names + [str(int(matrix.max()))]) + 1
    lines = ['gt \\ pred'.ljust(width) + ''.join(n.rjust(width) for n in names)]
    lines += [name.ljust(width) + ''.join(str(int(v)).rjust(width) for v in row)
              for name, row in zip(names, matrix)]
    return '\n'.join(lines)
