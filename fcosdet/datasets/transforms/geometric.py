"""Resizing and flipping: mmcv's transforms, registered in fcosdet's TRANSFORMS.

mmcv keeps its transforms in its own registry, which is not a parent of fcosdet's, so
``dict(type='Resize')`` under ``default_scope='fcosdet'`` needs these thin subclasses. Boxes
in ``gt_bboxes`` (numpy [M, 4], ``(x1, y1, x2, y2)``) follow the image; ``scale_factor`` is
``(w_scale, h_scale)`` and ``img_shape`` is ``(h, w)``.
"""
from __future__ import annotations

from collections.abc import Sequence

from mmcv.transforms import RandomChoiceResize as MMCVRandomChoiceResize
from mmcv.transforms import RandomFlip as MMCVRandomFlip
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
        self.resize_cfg = dict(type=resize_type, **resize_kwargs)
        self.resize = TRANSFORMS.build({'scale': 0, **self.resize_cfg})
