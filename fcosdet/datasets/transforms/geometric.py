"""Resizing and flipping: mmcv's transforms, registered in fcosdet's TRANSFORMS.

mmcv keeps its transforms in its own registry, which is not a parent of fcosdet's, so
``dict(type='Resize')`` under ``default_scope='fcosdet'`` needs these thin subclasses. Boxes
in ``gt_bboxes`` (numpy [M, 4], ``(x1, y1, x2, y2)``) follow the image; ``scale_factor`` is
``(w_scale, h_scale)`` and ``img_shape`` is ``(h, w)``. Shape letters: M boxes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import RandomChoiceResize as MMCVRandomChoiceResize
from mmcv.transforms import RandomFlip as MMCVRandomFlip
from mmcv.transforms import RandomResize as MMCVRandomResize
from mmcv.transforms import Resize as MMCVResize

from fcosdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class Resize(MMCVResize):
    """Resize image and boxes, e.g. ``Resize(scale=(1333, 800), keep_ratio=True)``.

    With ``keep_ratio`` the image is scaled so that its long side is at most ``max(scale)``
    and its short side at most ``min(scale)``. Boxes are scaled and clipped to the image;
    sets ``img_shape``, ``scale_factor`` and ``keep_ratio``.
    """


@TRANSFORMS.register_module()
class RandomFlip(MMCVRandomFlip):
    """Flip image and boxes with probability ``prob`` (``x1' = w - x2``, ``x2' = w - x1``).

    Sets ``flip`` and ``flip_direction`` (``'horizontal'``, ``'vertical'``, ``'diagonal'`` or
    None).
    """


@TRANSFORMS.register_module()
class RandomChoiceResize(MMCVRandomChoiceResize):
    """Resize to a scale drawn uniformly from ``scales`` (multi-scale training).

    Example: ``RandomChoiceResize(scales=[(1333, 640), (1333, 672), ..., (1333, 800)],
    keep_ratio=True)``.

    Args:
        scales: Candidate ``(long, short)`` scales.
        resize_type: Registered name, in fcosdet's TRANSFORMS, of the resize to apply.
        **resize_kwargs: Other arguments of that resize (``keep_ratio``, ...).
    """

    def __init__(self, scales: Sequence[int | tuple[int, int]], resize_type: str = 'Resize',
                 **resize_kwargs) -> None:
        # not super().__init__: mmcv would build the resize from its own registry
        self.scales = list(scales) if isinstance(scales, list) else [scales]
        if not self.scales or not all(isinstance(s, (int, tuple)) for s in self.scales):
            raise ValueError(f'RandomChoiceResize: scales must be ints or (long, short) tuples, '
                             f'got {scales!r}')
        self.resize_cfg, self.resize = _build_resize(resize_type, resize_kwargs)


@TRANSFORMS.register_module()
class RandomResize(MMCVRandomResize):
    """Resize to ``scale`` times a ratio drawn uniformly from ``ratio_range`` (large-scale
    jitter), e.g. ``RandomResize(scale=(1024, 1024), ratio_range=(0.1, 2.0), keep_ratio=True)``.

    Args:
        scale: Base ``(w, h)`` scale (or two scales to draw between, without ``ratio_range``).
        ratio_range: ``(min, max)`` of the ratio.
        resize_type: Registered name, in fcosdet's TRANSFORMS, of the resize to apply.
        **resize_kwargs: Other arguments of that resize (``keep_ratio``, ...).
    """

    def __init__(self, scale: tuple[int, int] | Sequence[tuple[int, int]],
                 ratio_range: tuple[float, float] | None = None, resize_type: str = 'Resize',
                 **resize_kwargs) -> None:
        # not super().__init__: mmcv would build the resize from its own registry
        self.scale = scale
        self.ratio_range = ratio_range
        self.resize_cfg, self.resize = _build_resize(resize_type, resize_kwargs)


def _build_resize(resize_type: str, resize_kwargs: dict) -> tuple[dict, object]:
    """The resize config and an fcosdet resize built from it (its scale is set per image)."""
    resize_cfg = dict(type=resize_type, **resize_kwargs)
    return resize_cfg, TRANSFORMS.build({'scale': 0, **resize_cfg})


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random window of the image; boxes are shifted, clipped and kept if they overlap it.

    ``crop_type='absolute_range'`` (the large-scale-jitter crop): the window is
    ``min(h, crop_size[0])..min(h, crop_size[1])`` rows by ``min(w, crop_size[0])..min(w,
    crop_size[1])`` columns, at a uniform random offset. ``'absolute'``: ``crop_size`` is
    ``(w, h)``, as MMDetection's (clipped to the image). Boxes that do not overlap the window
    are dropped with their labels and ignore flags; ``img_shape`` becomes the window's
    ``(h, w)``.

    Args:
        crop_size: ``(min, max)`` side for 'absolute_range', ``(w, h)`` for 'absolute'.
        crop_type: 'absolute_range' or 'absolute'.
        allow_negative_crop: Keep a window without any box (else the sample is dropped: None).
        recompute_bbox: Recompute boxes from masks; fcosdet has no masks, so boxes are always
            the shifted, clipped originals (accepted for MMDetection's configs).
        bbox_clip_border: Clip boxes to the window.
    """

    def __init__(self, crop_size: tuple[int, int], crop_type: str = 'absolute',
                 allow_negative_crop: bool = False, recompute_bbox: bool = False,
                 bbox_clip_border: bool = True) -> None:
        if crop_type not in ('absolute', 'absolute_range'):
            raise ValueError(f"RandomCrop: crop_type must be 'absolute' or 'absolute_range', "
                             f'got {crop_type!r}')
        low, high = crop_size
        if min(low, high) <= 0 or (crop_type == 'absolute_range' and low > high):
            raise ValueError(f'RandomCrop: bad crop_size {tuple(crop_size)} for {crop_type}')
        self.crop_size = (int(low), int(high))
        self.crop_type = crop_type
        self.allow_negative_crop = allow_negative_crop
        self.recompute_bbox = recompute_bbox
        self.bbox_clip_border = bbox_clip_border

    def _window_size(self, h: int, w: int) -> tuple[int, int]:
        """``(crop_h, crop_w)`` of this sample."""
        if self.crop_type == 'absolute':
            return min(h, self.crop_size[1]), min(w, self.crop_size[0])
        low, high = self.crop_size
        return (np.random.randint(min(h, low), min(h, high) + 1),
                np.random.randint(min(w, low), min(w, high) + 1))

    def transform(self, results: dict) -> dict | None:
        """Crop ``img`` and its boxes (``gt_bboxes`` [M, 4] and the per-box arrays)."""
        h, w = results['img'].shape[:2]
        crop_h, crop_w = self._window_size(h, w)
        top = np.random.randint(0, h - crop_h + 1)
        left = np.random.randint(0, w - crop_w + 1)
        results['img'] = results['img'][top:top + crop_h, left:left + crop_w]
        results['img_shape'] = (crop_h, crop_w)
        if results.get('gt_bboxes') is None:
            return results
        boxes = results['gt_bboxes'] - np.array([left, top, left, top], dtype=np.float32)
        if self.bbox_clip_border:
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, crop_w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, crop_h)
        inside = ((boxes[:, 0] < crop_w) & (boxes[:, 2] > 0) &
                  (boxes[:, 1] < crop_h) & (boxes[:, 3] > 0))
        if not inside.any() and not self.allow_negative_crop:
            return None
        results['gt_bboxes'] = boxes[inside]
        for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
            if results.get(key) is not None:
                results[key] = results[key][inside]
        return results
