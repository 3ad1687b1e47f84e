"""Deformable convolution (DCNv1 / DCNv2) as a pure-PyTorch function, with an optional fast path.

Shape letters: N images, C input channels, O output channels, H/W input height/width,
Ho/Wo output height/width, P = Ho * Wo output positions, K = kh * kw kernel points,
D deform groups, G conv groups.

Layout as MMCV's and torchvision's ops: ``offset`` is ``[N, D * 2 * K, Ho, Wo]`` holding, per
deform group, K pairs (dy, dx) in kernel (row-major) order; ``mask`` is ``[N, D * K, Ho, Wo]``.
Kernel point k = i * kw + j of output (y, x) samples the input at
``(y * sh - ph + i * dh + dy, x * sw - pw + j * dw + dx)`` by bilinear interpolation, corners
outside the image reading zero. Input channel c belongs to deform group ``c // (C / D)``.

The pure version samples every kernel point of every channel with one ``grid_sample`` call into
an im2col buffer ``[N, C * K, P]`` (the weight's own (c, k) order, so no copy), multiplies by
the mask in place and applies the weight with one matrix product; autograd gives every
gradient. (Gathering the four corners by index into a channels-last buffer made the whole op
3-4x slower than with ``grid_sample`` on CPU.)
"""
import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

try:  # optional compiled fast path; never a dependency
    from torchvision.ops import deform_conv2d as _tv_deform_conv2d
except ImportError:  # pragma: no cover - depends on the environment
    _tv_deform_conv2d = None

IntPair = int | tuple[int, int]
# FCOSDET_DEFORM_CONV=pure disables the compiled fast path (benchmarks, debugging).
BACKEND_ENV = 'FCOSDET_DEFORM_CONV'
# Channels sampled per grid_sample batch item (see _grid_sample_channels).
CHANNELS_PER_SAMPLE = 8


def compiled_backend_available() -> bool:
    """Whether ``torchvision.ops.deform_conv2d`` is importable and not disabled by the env."""
    return _tv_deform_conv2d is not None and os.environ.get(BACKEND_ENV, 'auto') != 'pure'


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def _check_shapes(x: Tensor, offset: Tensor, mask: Tensor | None, weight: Tensor,
                  stride: tuple[int, int], padding: tuple[int, int],
                  dilation: tuple[int, int], groups: int, deform_groups: int) -> None:
    """Raise a ValueError naming the mismatching tensor."""
    n, c, h, w = x.shape
    out_c, c_per_group, kh, kw = weight.shape
    if c != c_per_group * groups or out_c % groups or c % deform_groups:
        raise ValueError(f'deform_conv2d: input channels {c}, weight {tuple(weight.shape)}, '
                         f'groups={groups}, deform_groups={deform_groups} do not fit')
    ho = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = _out_size(w, kw, stride[1], padding[1], dilation[1])
    expect = (n, deform_groups * 2 * kh * kw, ho, wo)
    if tuple(offset.shape) != expect:
        raise ValueError(f'deform_conv2d: offset must be {expect}, got {tuple(offset.shape)}')
    if mask is not None and tuple(mask.shape) != (n, deform_groups * kh * kw, ho, wo):
        raise ValueError(f'deform_conv2d: mask must be {(n, deform_groups * kh * kw, ho, wo)}, '
                         f'got {tuple(mask.shape)}')


def position_dtype(x: Tensor) -> torch.dtype:
    """The dtype of sampling positions for features ``x``: at least float32.

    bfloat16 has 8 significant bits, so position 290.3 would be 290 (and normalised grid
    coordinates are as coarse); under autocast the features are bfloat16, the positions must
    not be.
    """
    return torch.promote_types(x.dtype, torch.float32)


def _sample_grid(offset: Tensor, in_size: tuple[int, int], kernel_size: tuple[int, int],
                 stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                 deform_groups: int) -> Tensor:
    """Sampling positions as a ``grid_sample`` grid ``[N * D, K, P, 2]`` of normalised (x, y),
    in ``offset``'s dtype (give it :func:`position_dtype`).

    With ``align_corners=False`` pixel p of a size-S axis has the normalised coordinate
    ``(2 * p + 1) / S - 1``.
    """
    n, _, ho, wo = offset.shape
    kh, kw = kernel_size
    off = offset.reshape(n * deform_groups, kh * kw, 2, ho, wo)
    opts = dict(device=offset.device, dtype=offset.dtype)
    ki = torch.arange(kh, **opts).repeat_interleave(kw) * dilation[0]  # [K]
    kj = torch.arange(kw, **opts).repeat(kh) * dilation[1]
    base_y = ki[:, None, None] + (torch.arange(ho, **opts) * stride[0] - padding[0])[:, None]
    base_x = kj[:, None, None] + (torch.arange(wo, **opts) * stride[1] - padding[1])
    gy = (2 * (base_y + off[:, :, 0]) + 1) / in_size[0] - 1  # [N * D, K, Ho, Wo]
    gx = (2 * (base_x + off[:, :, 1]) + 1) / in_size[1] - 1
    return torch.stack((gx, gy), dim=-1).view(n * deform_groups, kh * kw, ho * wo, 2)


def _grid_sample_channels(x: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of ``x [B, E, H, W]`` at ``grid [B, K, P, 2]``, as ``[B, E, K, P]``.

    One call samples every kernel point of every channel. ``grid_sample`` visits the channels
    of a batch item at each grid point, so with large planes every step touches E pages;
    splitting the channels into batch items of at most :data:`CHANNELS_PER_SAMPLE` (the grid
    repeated) keeps each plane in cache and measured 1.3-2.5x faster on CPU.
    """
    b, e, h, w = x.shape
    chunk = math.gcd(e, CHANNELS_PER_SAMPLE)
    if chunk < e:
        grid = grid[:, None].expand(-1, e // chunk, -1, -1, -1).reshape(-1, *grid.shape[1:])
        x = x.reshape(b * (e // chunk), chunk, h, w)
    cols = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    return cols.reshape(b, e, *grid.shape[1:3])


def deform_conv2d_pure(x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None,
                       stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                       groups: int = 1, deform_groups: int = 1,
                       mask: Tensor | None = None) -> Tensor:
    """Deformable convolution in pure PyTorch (DCNv2 with ``mask``, DCNv1 without).

    Args:
        x: Input ``[N, C, H, W]``.
        offset: ``[N, D * 2 * K, Ho, Wo]``, (dy, dx) pairs per deform group in kernel order.
        weight: ``[O, C / G, kh, kw]``.
        bias: ``[O]`` or None.
        stride, padding, dilation: As for ``nn.Conv2d``.
        groups: G, conv groups.
        deform_groups: D, groups of input channels sharing one set of offsets.
        mask: ``[N, D * K, Ho, Wo]`` modulation, or None.

    Returns:
        Tensor: ``[N, O, Ho, Wo]``.
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    _check_shapes(x, offset, mask, weight, stride, padding, dilation, groups, deform_groups)
    n, c, h, w = x.shape
    out_c, c_per_group, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    k, d = kh * kw, deform_groups
    dtype = position_dtype(x)
    grid = _sample_grid(offset.to(dtype), (h, w), (kh, kw), stride, padding, dilation, d)
    # Sampled at float32 positions; the samples go back to x's dtype (autocast: bfloat16).
    cols = _grid_sample_channels(x.reshape(n * d, c // d, h, w).to(dtype), grid).to(x.dtype)
    if mask is not None:
        mask = mask.to(x.dtype).reshape(n * d, 1, k, ho * wo)
        # In place unless autograd needs the unmasked samples for the mask's gradient.
        keep = torch.is_grad_enabled() and mask.requires_grad
        cols = cols * mask if keep else cols.mul_(mask)
    # im2col layout [N, G, (C / G) * K, P] matches weight [G, O / G, (C / G) * K]: no copy.
    cols = cols.view(n, groups, c_per_group * k, ho * wo)
    out = torch.matmul(weight.reshape(groups, out_c // groups, c_per_group * k), cols)
    out = out.view(n, out_c, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def deform_conv2d(x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None,
                  stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                  groups: int = 1, deform_groups: int = 1, mask: Tensor | None = None,
                  use_compiled: bool | None = None) -> Tensor:
    """Deformable convolution, via ``torchvision.ops.deform_conv2d`` when available.

    Same arguments and result as :func:`deform_conv2d_pure`; ``use_compiled`` None picks the
    compiled op when :func:`compiled_backend_available`, False forces the pure version.
    """
    if use_compiled is None:
        use_compiled = compiled_backend_available()
    if not use_compiled:
        return deform_conv2d_pure(x, offset, weight, bias, stride, padding, dilation, groups,
                                  deform_groups, mask)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    _check_shapes(x, offset, mask, weight, stride, padding, dilation, groups, deform_groups)
    # torchvision computes positions in the input's dtype: run it in at least float32.
    dtype = position_dtype(x)
    out = _tv_deform_conv2d(x.to(dtype), offset.to(dtype), weight.to(dtype),
                            None if bias is None else bias.to(dtype), stride, padding, dilation,
                            None if mask is None else mask.to(dtype))
    # torchvision infers G from weight.shape[1] and D from offset.shape[1]: same layout.
    return out.to(x.dtype)


def deform_sampling(x: Tensor, offset: Tensor) -> Tensor:
    """Every channel sampled bilinearly at its own offset (TOOD's regression alignment).

    A deformable convolution with a 1x1 all-ones kernel, one conv group and one deform group
    per channel: output ``(c, y, x)`` is the input channel c read at ``(y + dy_c, x + dx_c)``,
    corners outside the map reading zero.

    Computed as that convolution's sampling alone (multiplying by the ones kernel is exact,
    and under autocast the product would round the samples to bfloat16): positions and
    samples in at least float32, the result in ``x``'s dtype.

    Args:
        x: Input ``[N, C, H, W]``.
        offset: ``[N, 2 * C, H, W]``, (dy, dx) of channel c at ``2c``, ``2c + 1``.

    Returns:
        Tensor: ``[N, C, H, W]``.
    """
    n, c, h, w = x.shape
    if tuple(offset.shape) != (n, 2 * c, h, w):
        raise ValueError(f'deform_sampling: offset must be {(n, 2 * c, h, w)}, got '
                         f'{tuple(offset.shape)}')
    dtype = position_dtype(x)
    grid = _sample_grid(offset.to(dtype), (h, w), (1, 1), (1, 1), (0, 0), (1, 1), c)
    samples = F.grid_sample(x.reshape(n * c, 1, h, w).to(dtype), grid, mode='bilinear',
                            padding_mode='zeros', align_corners=False)  # [N * C, 1, 1, H * W]
    return samples.reshape(n, c, h, w).to(x.dtype)
