"""Square/rectangular anchors tiled over every FPN level, as MMDetection's ``AnchorGenerator``.

Shape letters: N images, L levels, H_l/W_l height/width of level l, A base anchors per point,
R_l = H_l * W_l * A priors of level l, R priors of all levels.
"""
from collections.abc import Sequence

import torch
from torch import Tensor

from fcosdet.models.task_modules.point_generator import as_stride_pair
from fcosdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class AnchorGenerator:
    """Anchors ``base_anchor + (j * s_w, i * s_h)`` of each level's grid (MMDetection's order).

    The ATSS family uses one square anchor per point: ``ratios=[1.0]``, ``octave_base_scale=8``,
    ``scales_per_octave=1``, so level l's anchor is ``8 * stride_l`` wide, centred at
    ``(j * s + center_offset * s, i * s + center_offset * s)``.

    Args:
        strides (Sequence[int | Sequence[int]]): Per level ``s`` or ``(s_w, s_h)``.
        ratios (Sequence[float]): Height/width ratios.
        scales (Sequence[float] | None): Anchor scales (multiples of the base size); give
            either this or ``octave_base_scale`` + ``scales_per_octave``.
        base_sizes (Sequence[int] | None): Per level base size; defaults to ``min(s_w, s_h)``.
        scale_major (bool): Order base anchors scale-major (all scales of ratio 0 first).
        octave_base_scale (float | None): Scales are ``octave_base_scale * 2**(i / k)``, ...
        scales_per_octave (int | None): ... for ``i < k = scales_per_octave``.
        centers (Sequence[tuple[float, float]] | None): Per level anchor centre inside the
            cell, in pixels; overrides ``center_offset``.
        center_offset (float): Centre inside the cell in units of the base size (0 = the
            cell's top-left corner, MMDetection's default).
    """

    def __init__(self, strides: Sequence[int | Sequence[int]], ratios: Sequence[float],
                 scales: Sequence[float] | None = None,
                 base_sizes: Sequence[int] | None = None, scale_major: bool = True,
                 octave_base_scale: float | None = None, scales_per_octave: int | None = None,
                 centers: Sequence[tuple[float, float]] | None = None,
                 center_offset: float = 0.0) -> None:
        self.strides = [as_stride_pair(s, 'AnchorGenerator') for s in strides]
        if not self.strides:
            raise ValueError('AnchorGenerator: strides must not be empty')
        self.base_sizes = (list(base_sizes) if base_sizes is not None
                           else [min(s) for s in self.strides])
        if len(self.base_sizes) != len(self.strides):
            raise ValueError(f'AnchorGenerator: {len(self.base_sizes)} base_sizes for '
                             f'{len(self.strides)} strides')
        if (scales is None) == (octave_base_scale is None or scales_per_octave is None):
            raise ValueError('AnchorGenerator: give either scales or both octave_base_scale '
                             f'and scales_per_octave, got scales={scales}, octave_base_scale='
                             f'{octave_base_scale}, scales_per_octave={scales_per_octave}')
        if scales is None:
            scales = [octave_base_scale * 2 ** (i / scales_per_octave)
                      for i in range(scales_per_octave)]
        if centers is not None and len(centers) != len(self.strides):
            raise ValueError(f'AnchorGenerator: {len(centers)} centers for '
                             f'{len(self.strides)} strides')
        self.scales = torch.tensor(scales, dtype=torch.float32)
        self.ratios = torch.tensor(ratios, dtype=torch.float32)
        self.octave_base_scale = octave_base_scale
        self.scales_per_octave = scales_per_octave
        self.scale_major = scale_major
        self.centers = centers
        self.center_offset = center_offset
        self.base_anchors = [self._base_anchors(size, level)
                             for level, size in enumerate(self.base_sizes)]

    @property
    def num_levels(self) -> int:
        """Number of levels L."""
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """A, the anchors per point, of each level."""
        return [len(anchors) for anchors in self.base_anchors]

    def _base_anchors(self, base_size: int, level: int) -> Tensor:
        """``[A, 4]`` anchors of one point at the origin cell, x1y1x2y2."""
        if self.centers is None:
            center_x = center_y = self.center_offset * base_size
        else:
            center_x, center_y = self.centers[level]
        h_ratios = torch.sqrt(self.ratios)
        w_ratios = 1 / h_ratios
        if self.scale_major:
            widths = (base_size * w_ratios[:, None] * self.scales[None, :]).reshape(-1)
            heights = (base_size * h_ratios[:, None] * self.scales[None, :]).reshape(-1)
        else:
            widths = (base_size * self.scales[:, None] * w_ratios[None, :]).reshape(-1)
            heights = (base_size * self.scales[:, None] * h_ratios[None, :]).reshape(-1)
        return torch.stack([center_x - 0.5 * widths, center_y - 0.5 * heights,
                            center_x + 0.5 * widths, center_y + 0.5 * heights], dim=-1)

    def grid_priors(self, featmap_sizes: list[tuple[int, int]],
                    dtype: torch.dtype = torch.float32,
                    device: torch.device | str = 'cpu') -> list[Tensor]:
        """Anchors of all levels.

        Args:
            featmap_sizes (list[tuple[int, int]]): ``(H_l, W_l)`` of each of the L levels.
            dtype (torch.dtype): Dtype of the anchors.
            device (torch.device | str): Device of the anchors.

        Returns:
            list[Tensor]: Per level ``[R_l, 4]`` x1y1x2y2, row-major points (column index
            fastest), the A anchors of a point consecutive.
        """
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f'AnchorGenerator: got {len(featmap_sizes)} feature-map sizes for '
                             f'{self.num_levels} strides')
        anchors = []
        for level, (height, width) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[level]
            shift_x = torch.arange(width, device=device).to(dtype) * stride_w
            shift_y = torch.arange(height, device=device).to(dtype) * stride_h
            grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing='ij')
            shift_x, shift_y = grid_x.reshape(-1), grid_y.reshape(-1)
            shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=-1)
            base = self.base_anchors[level].to(device=device, dtype=dtype)
            anchors.append((base[None, :, :] + shifts[:, None, :]).reshape(-1, 4))
        return anchors

    def valid_flags(self, featmap_sizes: list[tuple[int, int]], pad_shapes: Tensor,
                    device: torch.device | str = 'cpu') -> Tensor:
        """Which anchors lie on each image's own padded area (not on batch padding).

        A point (i, j) of level l is valid for an image of padded size ``(h, w)`` when
        ``i < ceil(h / s_h)`` and ``j < ceil(w / s_w)``, as MMDetection's ``valid_flags``.

        Args:
            featmap_sizes (list[tuple[int, int]]): ``(H_l, W_l)`` of each level.
            pad_shapes (Tensor): ``[N, 2]`` per image padded ``(h, w)``.
            device (torch.device | str): Device of the result.

        Returns:
            Tensor: Bool ``[N, R]``, levels concatenated in ``grid_priors`` order.
        """
        pad_shapes = pad_shapes.to(device=device, dtype=torch.float64)
        flags = []
        for level, (height, width) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[level]
            valid_h = torch.ceil(pad_shapes[:, 0] / stride_h).clamp(max=height)  # [N]
            valid_w = torch.ceil(pad_shapes[:, 1] / stride_w).clamp(max=width)
            rows = torch.arange(height, device=device)[None, :, None] < valid_h[:, None, None]
            cols = torch.arange(width, device=device)[None, None, :] < valid_w[:, None, None]
            flag = (rows & cols).reshape(len(pad_shapes), -1)  # [N, H_l * W_l]
            flags.append(flag.repeat_interleave(self.num_base_priors[level], dim=1))
        return torch.cat(flags, dim=1)

