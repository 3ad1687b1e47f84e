"""Dropping boxes too small to learn from (after cropping, a box can shrink to a sliver).

Shape letters: M boxes of the image.
"""
from __future__ import annotations

from mmcv.transforms import BaseTransform

from fcosdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class FilterAnnotations(BaseTransform):
    """Keep the boxes wider than ``min_gt_bbox_wh[0]`` and taller than ``min_gt_bbox_wh[1]``.

    ``gt_bboxes`` [M, 4] and the per-box ``gt_bboxes_labels`` / ``gt_ignore_flags`` are
    filtered together. An image without boxes passes unchanged; when boxes were there but none
    is kept, ``keep_empty=True`` drops the sample (None: the dataset draws another one).

    Args:
        min_gt_bbox_wh: ``(w, h)`` a box must exceed.
        by_box: Filter by box size (the only criterion without masks).
        keep_empty: Drop a sample whose boxes are all filtered out.
    """

    def __init__(self, min_gt_bbox_wh: tuple[float, float] = (1.0, 1.0), by_box: bool = True,
                 keep_empty: bool = True) -> None:
        if not by_box:
            raise ValueError('FilterAnnotations: by_box=False leaves nothing to filter by '
                             '(fcosdet has no masks)')
        self.min_gt_bbox_wh = tuple(min_gt_bbox_wh)
        self.by_box = by_box
        self.keep_empty = keep_empty

    def transform(self, results: dict) -> dict | None:
        """Filter the boxes of one sample."""
        boxes = results['gt_bboxes']
        if boxes.shape[0] == 0:
            return results
        keep = ((boxes[:, 2] - boxes[:, 0] > self.min_gt_bbox_wh[0]) &
                (boxes[:, 3] - boxes[:, 1] > self.min_gt_bbox_wh[1]))
        if not keep.any() and self.keep_empty:
            return None
        for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags'):
            if key in results:
                results[key] = results[key][keep]
        return results
