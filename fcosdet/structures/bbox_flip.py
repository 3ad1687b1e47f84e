"""Flipping boxes with their image.

Boxes are absolute-pixel ``(x1, y1, x2, y2)``. Shape letters: ``K`` boxes. Flipping an image of
width ``W`` horizontally maps pixel edge ``x`` to ``W - x``, so a box's ``x1, x2`` become
``W - x2, W - x1``; vertically the same with ``y`` and the height ``H``; ``'diagonal'`` is both.
Flipping twice gives the boxes back exactly.
"""
import torch
from torch import Tensor

FLIP_DIRECTIONS = ('horizontal', 'vertical', 'diagonal')


def flip_bboxes_where(bboxes: Tensor, sizes: Tensor, flip_x: Tensor,
                      flip_y: Tensor) -> Tensor:
    """Flip each box horizontally and/or vertically within its own image.

    Args:
        bboxes: ``[K, 4]`` boxes.
        sizes: ``[K, 2]`` ``(H, W)`` of the image each box lies in.
        flip_x: Bool ``[K]``: flip this box horizontally.
        flip_y: Bool ``[K]``: flip this box vertically.

    Returns:
        ``[K, 4]`` flipped boxes (a new tensor).
    """
    x1, y1, x2, y2 = bboxes.unbind(-1)
    height, width = sizes.to(bboxes).unbind(-1)
    return torch.stack([
        torch.where(flip_x, width - x2, x1),
        torch.where(flip_y, height - y2, y1),
        torch.where(flip_x, width - x1, x2),
        torch.where(flip_y, height - y1, y2),
    ], dim=-1)


def bbox_flip(bboxes: Tensor, img_shape: tuple[int, int], direction: str = 'horizontal') -> Tensor:
    """Flip boxes like their image of shape ``img_shape``.

    Args:
        bboxes: ``[K, 4]`` boxes.
        img_shape: ``(H, W)`` of the image.
        direction: ``'horizontal'``, ``'vertical'`` or ``'diagonal'``.

    Returns:
        ``[K, 4]`` flipped boxes.

    Raises:
        ValueError: An unknown direction or boxes not shaped ``[K, 4]``.
    """
    if direction not in FLIP_DIRECTIONS:
        raise ValueError(f'bbox_flip: direction must be one of {FLIP_DIRECTIONS}, '
                         f'got {direction!r}')
    if bboxes.dim() != 2 or bboxes.shape[-1] != 4:
        raise ValueError(f'bbox_flip: boxes must be [K, 4], got {tuple(bboxes.shape)}')
    num = bboxes.shape[0]
    sizes = torch.as_tensor(img_shape[:2], dtype=bboxes.dtype,
                            device=bboxes.device).expand(num, 2)
    flip_x = torch.full((num,), direction != 'vertical', device=bboxes.device)
    flip_y = torch.full((num,), direction != 'horizontal', device=bboxes.device)
    return flip_bboxes_where(bboxes, sizes, flip_x, flip_y)
