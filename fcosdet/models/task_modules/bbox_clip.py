"""Clipping of decoded boxes to the image, shared by the box coders.

Shape letters: ``N`` images; ``...`` any further dimensions of the boxes.
"""
import torch
from torch import Tensor


def clip_bboxes(bboxes: Tensor, max_shape: tuple[int, int] | Tensor, owner: str) -> Tensor:
    """Clip boxes ``(x1, y1, x2, y2)`` to ``[0, w] x [0, h]``.

    Args:
        bboxes (Tensor): ``[..., 4]`` boxes, or ``[N, ..., 4]`` with a Tensor ``max_shape``.
        max_shape (tuple[int, int] | Tensor): ``(h, w)`` shared by all boxes, or ``[N, 2]``
            per-image ``(h, w)``.
        owner (str): Caller named in error messages.

    Returns:
        Tensor: Clipped boxes shaped like ``bboxes``.
    """
    if isinstance(max_shape, Tensor):
        if max_shape.dim() != 2 or max_shape.shape[1] != 2 or max_shape.shape[0] != bboxes.shape[0]:
            raise ValueError(f'{owner}: a Tensor max_shape must be [N, 2] for boxes '
                             f'{tuple(bboxes.shape)}, got {tuple(max_shape.shape)}')
        # [N, 2] (h, w) -> [N, 1, ..., 1, 4] upper bounds (w, h, w, h).
        upper = max_shape.flip(-1).repeat(1, 2).to(bboxes)
        upper = upper.view(bboxes.shape[0], *([1] * (bboxes.dim() - 2)), 4)
        return torch.minimum(bboxes.clamp(min=0), upper)
    height, width = max_shape[0], max_shape[1]
    upper = bboxes.new_tensor([width, height, width, height])
    return torch.minimum(bboxes.clamp(min=0), upper)
