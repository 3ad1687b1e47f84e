"""Conversion between boxes ``(x1, y1, x2, y2)`` and point-to-side distances ``(l, t, r, b)``.

Shape letters: ``N`` images, ``R`` points; ``...`` any broadcastable leading dimensions.
"""
import torch
from torch import Tensor

from fcosdet.models.task_modules.bbox_clip import clip_bboxes
from fcosdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class DistancePointBBoxCoder:
    """Encode a box as the distances from a point to its four sides, and back.

    Args:
        clip_border: Clip decoded boxes to the image when ``max_shape`` is given.
    """

    def __init__(self, clip_border: bool = True) -> None:
        self.clip_border = clip_border

    def encode(self, points: Tensor, gt_bboxes: Tensor, max_dis: float | None = None,
               eps: float = 0.1) -> Tensor:
        """Distances ``(x − x1, y − y1, x2 − x, y2 − y)``; GFL's distribution-focal-loss targets
        (``max_dis=reg_max``) come from here.

        Args:
            points: ``[..., 2]`` points ``(x, y)``.
            gt_bboxes: ``[..., 4]`` boxes, broadcastable against ``points``.
            max_dis: When given, distances are clamped to ``[0, max_dis − eps]``.
            eps: Margin below ``max_dis``.

        Returns:
            ``[..., 4]`` distances ``(l, t, r, b)``.
        """
        distances = torch.cat([points - gt_bboxes[..., :2], gt_bboxes[..., 2:] - points], dim=-1)
        if max_dis is not None:
            distances = distances.clamp(min=0, max=max_dis - eps)
        return distances

    def decode(self, points: Tensor, distances: Tensor,
               max_shape: tuple[int, int] | Tensor | None = None) -> Tensor:
        """Boxes ``(x − l, y − t, x + r, y + b)``.

        Args:
            points: ``[..., 2]`` points, e.g. ``[R, 2]``.
            distances: ``[..., 4]`` distances broadcastable against ``points``, e.g. ``[N, R, 4]``.
            max_shape: Image ``(h, w)`` shared by all boxes, or a Tensor ``[N, 2]`` of per-image
                ``(h, w)`` for distances ``[N, ..., 4]``. Boxes are clipped to ``[0, w] x [0, h]``
                when given and ``clip_border`` is set.

        Returns:
            ``[..., 4]`` boxes ``(x1, y1, x2, y2)``.
        """
        bboxes = torch.cat([points - distances[..., :2], points + distances[..., 2:]], dim=-1)
        if max_shape is None or not self.clip_border:
            return bboxes
        return clip_bboxes(bboxes, max_shape, 'DistancePointBBoxCoder.decode')

