"""Conversions between fcosdet results and COCO formats; per-class table and PR curves.

Shape letters: K detections, M gt boxes, C classes.
"""
from __future__ import annotations

import numpy as np
from mmengine.logging import print_log
from pycocotools.cocoeval import COCOeval
from terminaltables import AsciiTable


def _xyxy_to_xywh(bboxes: np.ndarray) -> np.ndarray:
    """[K, 4] ``(x1, y1, x2, y2)`` -> ``(x, y, w, h)``."""
    return np.concatenate([bboxes[:, :2], bboxes[:, 2:] - bboxes[:, :2]], axis=1)


def detections_to_coco(results: list[dict], cat_ids: list[int]) -> list[dict]:
    """Flatten per-image predictions into COCO's results format.

    Args:
        results: Dicts with ``img_id`` and ``pred`` (``bboxes`` [K, 4] x1y1x2y2,
            ``scores`` [K], ``labels`` [K] in [0, C)).
        cat_ids: Category id of each label, length C.

    Returns:
        ``dict(image_id, bbox=[x, y, w, h], score, category_id)`` per detection.

    Raises:
        ValueError: If a label is outside [0, C).
    """
    if not results:
        return []
    preds = [r['pred'] for r in results]
    labels = np.concatenate([p['labels'] for p in preds])
    if labels.size and (labels.min() < 0 or labels.max() >= len(cat_ids)):
        raise ValueError(f'CocoMetric: predicted label {int(labels.max())} or {int(labels.min())}'
                         f' is outside [0, {len(cat_ids)}) (the dataset classes)')
    img_ids = np.repeat([r['img_id'] for r in results], [len(p['labels']) for p in preds])
    boxes = _xyxy_to_xywh(np.concatenate([p['bboxes'] for p in preds]).reshape(-1, 4))
    scores = np.concatenate([p['scores'] for p in preds])
    categories = np.asarray(cat_ids, dtype=np.int64)[labels]
    return [
        dict(image_id=img_id, bbox=box, score=score, category_id=cat)
        for img_id, box, score, cat in zip(img_ids.tolist(), boxes.tolist(), scores.tolist(),
                                           categories.tolist())
    ]


def gt_to_coco_dict(results: list[dict], classes: list[str] | None) -> dict:
    """Build a COCO-format ground truth from the samples' own boxes.

    Category ids are the labels 0..C-1; ignored boxes become ``iscrowd=1``.

    Args:
        results: Dicts with ``img_id`` and ``gt`` (``height``, ``width``, ``instances`` and
            ``ignored``, each with ``bboxes`` [M, 4] and ``labels`` [M]).
        classes: Class names (from ``dataset_meta``).

    Returns:
        A dict with ``images``, ``annotations`` and ``categories``.

    Raises:
        ValueError: If there are no class names or a sample has no ground truth.
    """
    if classes is None:
        raise ValueError('CocoMetric: without ann_file the class names must come from '
                         "dataset_meta['classes'] (set by the Runner from the dataset)")
    if any('gt' not in r for r in results):
        raise ValueError('CocoMetric: without ann_file every sample needs gt_instances')
    images = [dict(id=r['img_id'], height=r['gt']['height'], width=r['gt']['width'])
              for r in results]
    parts = [(r['img_id'], r['gt'][key], int(key == 'ignored'))
             for r in results for key in ('instances', 'ignored')]
    img_ids = np.repeat([p[0] for p in parts], [len(p[1]['labels']) for p in parts])
    crowd = np.repeat([p[2] for p in parts], [len(p[1]['labels']) for p in parts])
    boxes = _xyxy_to_xywh(np.concatenate([p[1]['bboxes'] for p in parts]).reshape(-1, 4))
    labels = np.concatenate([p[1]['labels'] for p in parts]).astype(np.int64)
    annotations = [
        dict(id=index + 1, image_id=img_id, category_id=label, bbox=box, area=box[2] * box[3],
             iscrowd=flag)
        for index, (img_id, label, box, flag) in enumerate(
            zip(img_ids.tolist(), labels.tolist(), boxes.tolist(), crowd.tolist()))
    ]
    categories = [dict(id=label, name=name) for label, name in enumerate(classes)]
    return dict(images=images, annotations=annotations, categories=categories)


def _mean_valid(precision: np.ndarray) -> float:
    """Mean of the entries > -1 (COCOeval marks undefined ones with -1); NaN if none."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else float('nan')


def classwise_ap(coco_eval: COCOeval, cat_ids: list[int]) -> np.ndarray:
    """Per-class AP, AP50, AP75, APs, APm, APl of an accumulated COCOeval.

    Args:
        coco_eval: After ``accumulate()``.
        cat_ids: Category id of each label, length C.

    Returns:
        float [C, 6]; NaN where undefined (no gt of that class, or IoU 0.5/0.75 not used).
    """
    # precision: [T iou thresholds, R recall levels, K categories (sorted ids), A areas, M dets]
    precision = coco_eval.eval['precision']
    iou_thrs = coco_eval.params.iouThrs
    sorted_ids = list(coco_eval.params.catIds)
    table = np.full((len(cat_ids), 6), np.nan)
    for row, cat_id in enumerate(cat_ids):
        k = sorted_ids.index(cat_id)
        table[row, 0] = _mean_valid(precision[:, :, k, 0, -1])
        for col, thr in ((1, 0.5), (2, 0.75)):
            t = np.flatnonzero(np.isclose(iou_thrs, thr))
            if t.size:
                table[row, col] = _mean_valid(precision[t[0], :, k, 0, -1])
        for col, area in ((3, 1), (4, 2), (5, 3)):
            table[row, col] = _mean_valid(precision[:, :, k, area, -1])
    return table


def pr_curves(coco_eval: COCOeval, cat_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision at COCOeval's recall points (area ``all``, the last maxDets).

    Args:
        coco_eval: After ``accumulate()``.
        cat_ids: Category id of each label, length C.

    Returns:
        ``recall`` [R] (``params.recThrs``) and ``precision`` [C, T, R] for the T IoU
        thresholds of ``params.iouThrs``; NaN where undefined (no gt of that class).
    """
    precision = np.asarray(coco_eval.eval['precision'], dtype=np.float64)
    sorted_ids = list(coco_eval.params.catIds)
    curves = precision[:, :, [sorted_ids.index(c) for c in cat_ids], 0, -1]  # [T, R, C]
    curves = np.where(curves > -1, curves, np.nan).transpose(2, 0, 1)
    return np.asarray(coco_eval.params.recThrs, dtype=np.float64), curves


def classwise_table(coco_eval: COCOeval, cat_ids: list[int], classes: list[str] | None) -> str:
    """Print (log) and return the per-class AP table.

    Args:
        coco_eval: After ``accumulate()``.
        cat_ids: Category id of each label, length C.
        classes: Class names, or None to show category ids.

    Returns:
        The table as text.
    """
    names = classes or [str(cat_id) for cat_id in cat_ids]
    values = classwise_ap(coco_eval, cat_ids)
    rows = [['category', 'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']] + [
        [name] + [f'{v:.3f}' if np.isfinite(v) else 'nan' for v in row]
        for name, row in zip(names, values)
    ]
    text = AsciiTable(rows).table
    print_log('\n' + text, logger='current')
    return text
