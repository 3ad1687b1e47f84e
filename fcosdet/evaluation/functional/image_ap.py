"""Per-image mAP, as MMDetection's ``analyze_results.py`` ranks images.

For each IoU threshold of 0.50:0.05:0.95 and each class with gt boxes in the image, the VOC
"area" AP of that class's detections (greedy matching by score, each detection to the gt box it
overlaps most); the image's mAP is the mean over classes, then over thresholds. Detections of
classes without gt boxes are not counted (as in MMDetection's ``eval_map``).

Shape letters: K detections of a class, M gt boxes of a class, T IoU thresholds.
"""
from __future__ import annotations

import numpy as np
import torch

from fcosdet.structures import bbox_overlaps

from .det_results import ImageDets, ImageGt

COCO_IOU_THRS = np.linspace(0.5, 0.95, 10)
_EPS = np.finfo(np.float32).eps


def voc_area_ap(recalls: np.ndarray, precisions: np.ndarray) -> np.ndarray:
    """Area under the monotone (upper-envelope) precision–recall curve.

    Args:
        recalls: [T, K], non-decreasing along K.
        precisions: [T, K].

    Returns:
        [T] AP values.
    """
    num = recalls.shape[0]
    mrec = np.hstack([np.zeros((num, 1)), recalls, np.ones((num, 1))])
    mpre = np.hstack([np.zeros((num, 1)), precisions, np.zeros((num, 1))])
    envelope = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
    return (np.diff(mrec, axis=1) * envelope[:, 1:]).sum(axis=1)


def class_tp_fp(det_bboxes: np.ndarray, gt_bboxes: np.ndarray, gt_ignore: np.ndarray,
                iou_thrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives of one class's detections, sorted by score.

    A detection is matched to the gt box it overlaps most; at IoU >= the threshold it is a true
    positive if it is the first (highest-scoring) detection to claim a non-ignored box, a false
    positive if that box was claimed already, and neither if the box is ignored. Below the
    threshold it is a false positive.

    Args:
        det_bboxes: [K, 4], highest score first.
        gt_bboxes: [M, 4], M > 0.
        gt_ignore: bool [M].
        iou_thrs: [T].

    Returns:
        ``tp``, ``fp``: bool [T, K].
    """
    ious = bbox_overlaps(torch.from_numpy(det_bboxes), torch.from_numpy(gt_bboxes),
                         eps=1e-12).numpy()
    best_iou, best_gt = ious.max(axis=1), ious.argmax(axis=1)            # [K]
    hit = best_iou[None, :] >= iou_thrs[:, None]                         # [T, K]
    claims = hit & ~gt_ignore[best_gt][None, :]                          # [T, K]
    # [T, K, M]: detection k claims box m; the first claim of a box is the true positive
    per_box = claims[:, :, None] & (best_gt[:, None] == np.arange(len(gt_bboxes)))[None]
    first = per_box & (np.cumsum(per_box, axis=1) == 1)
    tp = first.any(axis=2)
    fp = ~hit | (claims & ~tp)
    return tp, fp


def image_map(dets: ImageDets, gt: ImageGt,
              iou_thrs: np.ndarray = COCO_IOU_THRS) -> float:
    """mAP of one image (see the module docstring); NaN when it has no non-ignored gt box.

    Args:
        dets: Detections (``bboxes`` [K, 4], ``scores`` [K], ``labels`` [K]).
        gt: Ground truth (``bboxes`` [M, 4], ``labels`` [M], ``ignore`` [M]).
        iou_thrs: [T] IoU thresholds.

    Returns:
        The mean over thresholds of the mean AP over the classes with gt boxes.
    """
    classes = np.unique(gt.labels[~gt.ignore])
    if classes.size == 0:
        return float('nan')
    iou_thrs = np.asarray(iou_thrs, dtype=np.float64)
    aps = []
    for label in classes:
        gt_mask = gt.labels == label
        num_gts = int((gt_mask & ~gt.ignore).sum())
        det_mask = dets.labels == label
        order = np.argsort(-dets.scores[det_mask], kind='stable')
        tp, fp = class_tp_fp(dets.bboxes[det_mask][order], gt.bboxes[gt_mask],
                             gt.ignore[gt_mask], iou_thrs)
        tp, fp = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
        recalls = tp / num_gts
        precisions = tp / np.maximum(tp + fp, _EPS)
        aps.append(voc_area_ap(recalls, precisions))
    return float(np.mean(aps))


def rank_images(maps: np.ndarray, topk: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``topk`` best and worst images by mAP (NaN ones left out).

    Args:
        maps: [N] per-image mAP (NaN: no gt).
        topk: How many of each.

    Returns:
        ``best`` (highest first) and ``worst`` (lowest first) index arrays. Ties keep the
        images' order.
    """
    valid = np.flatnonzero(~np.isnan(maps))
    ascending = valid[np.argsort(maps[valid], kind='stable')]
    descending = valid[np.argsort(-maps[valid], kind='stable')]
    return descending[:topk], ascending[:topk]
