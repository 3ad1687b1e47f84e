"""Box ↔ normalised centre/size deltas relative to a prior box (MMDetection's
``DeltaXYWHBBoxCoder``), batched.

Shape letters: ``N`` images, ``R`` priors; ``...`` any broadcastable leading dimensions.
Boxes are ``(x1, y1, x2, y2)``; deltas are ``(dx, dy, dw, dh)``.
"""
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from fcosdet.models.task_modules.bbox_clip import clip_bboxes
from fcosdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class DeltaXYWHBBoxCoder:
    """``dx = (gx − px) / pw``, ``dy = (gy − py) / ph``, ``dw = ln(gw / pw)``,
    ``dh = ln(gh / ph)``, then ``(d − target_means) / target_stds``.

    Args:
        target_means (Sequence[float]): Means subtracted from the raw deltas.
        target_stds (Sequence[float]): Stds dividing the raw deltas (ATSS: 0.1, 0.1, 0.2, 0.2).
        clip_border (bool): Clip decoded boxes to the image when ``max_shape`` is given.
        add_ctr_clamp (bool): Clamp the centre shift to ``±ctr_clamp`` pixels (and only the
            upper end of dw, dh) at decoding.
        ctr_clamp (int): Bound of the centre shift in pixels.
    """

    encode_size = 4

    def __init__(self, target_means: Sequence[float] = (0., 0., 0., 0.),
                 target_stds: Sequence[float] = (1., 1., 1., 1.), clip_border: bool = True,
                 add_ctr_clamp: bool = False, ctr_clamp: int = 32) -> None:
        if len(target_means) != 4 or len(target_stds) != 4:
            raise ValueError(f'DeltaXYWHBBoxCoder: target_means {tuple(target_means)} and '
                             f'target_stds {tuple(target_stds)} must have 4 values each')
        if any(s <= 0 for s in target_stds):
            raise ValueError(f'DeltaXYWHBBoxCoder: target_stds must be positive, got '
                             f'{tuple(target_stds)}')
        self.means = tuple(float(m) for m in target_means)
        self.stds = tuple(float(s) for s in target_stds)
        self.clip_border = clip_border
        self.add_ctr_clamp = add_ctr_clamp
        self.ctr_clamp = ctr_clamp

    def encode(self, bboxes: Tensor, gt_bboxes: Tensor) -> Tensor:
        """Deltas that turn prior ``bboxes`` into ``gt_bboxes``.

        Args:
            bboxes (Tensor): ``[..., 4]`` priors, e.g. ``[R, 4]``.
            gt_bboxes (Tensor): ``[..., 4]`` targets broadcastable against ``bboxes``.

        Returns:
            Tensor: ``[..., 4]`` normalised deltas.
        """
        prior_ctr, prior_wh = _center_size(bboxes.float())
        gt_ctr, gt_wh = _center_size(gt_bboxes.float())
        deltas = torch.cat([(gt_ctr - prior_ctr) / prior_wh, torch.log(gt_wh / prior_wh)], dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, bboxes: Tensor, pred_bboxes: Tensor,
               max_shape: tuple[int, int] | Tensor | None = None,
               wh_ratio_clip: float = 16 / 1000) -> Tensor:
        """Boxes from priors and predicted deltas.

        Args:
            bboxes (Tensor): ``[..., 4]`` priors, e.g. ``[R, 4]`` or ``[N, R, 4]``.
            pred_bboxes (Tensor): ``[..., 4]`` deltas broadcastable against ``bboxes``.
            max_shape (tuple[int, int] | Tensor | None): Image ``(h, w)`` shared by all
                boxes, or ``[N, 2]`` per image for ``[N, ..., 4]`` deltas.
            wh_ratio_clip (float): |dw|, |dh| are clamped to ``|ln(wh_ratio_clip)|``.

        Returns:
            Tensor: ``[..., 4]`` boxes ``(x1, y1, x2, y2)``.
        """
        deltas = pred_bboxes * pred_bboxes.new_tensor(self.stds) + pred_bboxes.new_tensor(
            self.means)
        prior_ctr, prior_wh = _center_size(bboxes)
        shift = prior_wh * deltas[..., :2]
        max_ratio = abs(math.log(wh_ratio_clip))
        dwh = deltas[..., 2:]
        if self.add_ctr_clamp:
            shift = shift.clamp(min=-self.ctr_clamp, max=self.ctr_clamp)
            dwh = dwh.clamp(max=max_ratio)
        else:
            dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
        center = prior_ctr + shift
        half_wh = prior_wh * dwh.exp() * 0.5
        decoded = torch.cat([center - half_wh, center + half_wh], dim=-1)
        if max_shape is None or not self.clip_border:
            return decoded
        return clip_bboxes(decoded, max_shape, 'DeltaXYWHBBoxCoder.decode')


def _center_size(bboxes: Tensor) -> tuple[Tensor, Tensor]:
    """Centres ``[..., 2]`` and sizes ``[..., 2]`` of ``[..., 4]`` boxes."""
    return (bboxes[..., :2] + bboxes[..., 2:]) * 0.5, bboxes[..., 2:] - bboxes[..., :2]
