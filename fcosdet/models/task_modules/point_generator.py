"""Centre points of the feature-map cells of every FPN level.

Shape letters: ``L`` levels, ``H_l, W_l`` height/width of level l, ``R_l = H_l * W_l`` points of
level l.
"""
from collections.abc import Sequence

import torch
from torch import Tensor

from fcosdet.registry import TASK_UTILS


def as_stride_pair(stride: int | Sequence[int],
                   owner: str = 'MlvlPointGenerator') -> tuple[int, int]:
    """Turn a stride ``s`` or ``(s_w, s_h)`` into a validated ``(s_w, s_h)`` pair."""
    pair = (stride, stride) if isinstance(stride, (int, float)) else tuple(stride)
    if len(pair) != 2 or any(s <= 0 for s in pair):
        raise ValueError(f'{owner}: a stride must be a positive number or a '
                         f'(w, h) pair of them, got {stride!r}')
    return int(pair[0]), int(pair[1])


@TASK_UTILS.register_module()
class MlvlPointGenerator:
    """Image-space points ``((j + offset) * s_w, (i + offset) * s_h)`` of each level's grid.

    Args:
        strides: One stride per level, an int or a ``(s_w, s_h)`` pair.
        offset: Position of the point inside its cell, in units of stride (0.5 = cell centre).
    """

    def __init__(self, strides: Sequence[int | Sequence[int]], offset: float = 0.5) -> None:
        if len(strides) == 0:
            raise ValueError('MlvlPointGenerator: strides must not be empty')
        self.strides: list[tuple[int, int]] = [as_stride_pair(s) for s in strides]
        self.offset = offset

    @property
    def num_levels(self) -> int:
        """Number of levels L."""
        return len(self.strides)

    def grid_priors(self, featmap_sizes: list[tuple[int, int]], dtype: torch.dtype = torch.float32,
                    device: torch.device | str = 'cpu') -> list[Tensor]:
        """Points of all levels.

        Args:
            featmap_sizes: ``(H_l, W_l)`` of each of the L levels.
            dtype: Dtype of the points.
            device: Device of the points.

        Returns:
            Per level ``[R_l, 2]`` points ``(x, y)``, row-major order (the column index j runs
            fastest).
        """
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f'MlvlPointGenerator: got {len(featmap_sizes)} feature-map sizes '
                             f'for {self.num_levels} strides')
        return [self.single_level_grid_priors(size, level, dtype, device)
                for level, size in enumerate(featmap_sizes)]

    def single_level_grid_priors(self, featmap_size: tuple[int, int], level: int,
                                 dtype: torch.dtype = torch.float32,
                                 device: torch.device | str = 'cpu') -> Tensor:
        """Points of one level.

        Args:
            featmap_size: ``(H_l, W_l)``.
            level: Index of the level (selects the stride).
            dtype: Dtype of the points.
            device: Device of the points.

        Returns:
            ``[R_l, 2]`` points in row-major order.
        """
        height, width = featmap_size
        stride_w, stride_h = self.strides[level]
        xs = (torch.arange(width, device=device, dtype=dtype) + self.offset) * stride_w
        ys = (torch.arange(height, device=device, dtype=dtype) + self.offset) * stride_h
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)
