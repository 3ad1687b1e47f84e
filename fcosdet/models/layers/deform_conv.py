"""Deformable convolution layers with MMCV's names, arguments and parameters.

Shape letters: N images, C input channels, O output channels, H/W input height/width,
Ho/Wo output height/width, K = kh * kw kernel points, D deform groups.

``DCN`` (:class:`DeformConv2dPack`, DCNv1) and ``DCNv2`` (:class:`ModulatedDeformConv2dPack`)
are registered under MMCV's names, so ``dcn=dict(type='DCNv2', ...)`` and
``conv_cfg=dict(type='DCNv2')`` build them and MMDetection checkpoints load unchanged
(``weight``, ``bias``, ``conv_offset.weight``, ``conv_offset.bias``). The op is
:func:`~fcosdet.models.layers.deform_conv_func.deform_conv2d`: pure PyTorch, or
``torchvision.ops.deform_conv2d`` when importable.
"""
import math

import torch
from mmcv.cnn import build_conv_layer
from torch import Tensor, nn
from torch.nn.modules.utils import _pair, _single

from fcosdet.registry import MODELS

from .deform_conv_func import IntPair, deform_conv2d


class _DeformConvBase(nn.Module):
    """Arguments and ``nn.Conv2d``-like attributes shared by the deformable convs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                 groups: int = 1, deform_groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'{name}: in_channels={in_channels} and out_channels='
                             f'{out_channels} must be divisible by groups={groups}')
        if in_channels % deform_groups:
            raise ValueError(f'{name}: in_channels={in_channels} must be divisible by '
                             f'deform_groups={deform_groups}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        # nn.Conv2d compatibility (ConvModule reads these).
        self.transposed = False
        self.output_padding = _single(0)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)

    def _deform(self, x: Tensor, offset: Tensor, mask: Tensor | None) -> Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding,
                             self.dilation, self.groups, self.deform_groups, mask)

    def _offset_conv(self, per_point: int) -> nn.Conv2d:
        """The conv predicting ``per_point`` values per kernel point and deform group."""
        return nn.Conv2d(self.in_channels, self.deform_groups * per_point * math.prod(
            self.kernel_size), self.kernel_size, stride=self.stride, padding=self.padding,
            dilation=self.dilation, bias=True)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}, deform_groups={self.deform_groups}, '
                f'bias={self.bias is not None}')


@MODELS.register_module()
class DeformConv2d(_DeformConvBase):
    """DCNv1 (Dai et al., ICCV 2017): the offsets are an input; no bias, as MMCV's.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups: As for
            ``nn.Conv2d``.
        deform_groups: D, groups of input channels sharing one set of offsets.
        bias: Must be False (MMCV's DeformConv2d has no bias).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                 groups: int = 1, deform_groups: int = 1, bias: bool = False) -> None:
        if bias:
            raise ValueError(f'{type(self).__name__}: bias=True is not supported (as MMCV)')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, deform_groups, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weight, as MMCV."""
        nn.init.kaiming_uniform_(self.weight, nonlinearity='relu')

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        """``x [N, C, H, W]``, ``offset [N, D * 2 * K, Ho, Wo]`` → ``[N, O, Ho, Wo]``."""
        return self._deform(x, offset, None)


@MODELS.register_module(name=['DCN', 'DeformConv2dPack'])
class DeformConv2dPack(DeformConv2d):
    """DCNv1 predicting its own offsets with ``conv_offset`` (zero-initialised)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_offset = self._offset_conv(2)
        self.init_offset()

    def init_offset(self) -> None:
        """Zero offsets at the start: the layer begins as a plain conv."""
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x [N, C, H, W]`` → ``[N, O, Ho, Wo]``."""
        return self._deform(x, self.conv_offset(x), None)


@MODELS.register_module()
class ModulatedDeformConv2d(_DeformConvBase):
    """DCNv2 (Zhu et al., CVPR 2019): offsets and a modulation mask are inputs.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: As
            for ``nn.Conv2d``.
        deform_groups: D, groups of input channels sharing one set of offsets and mask.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                 groups: int = 1, deform_groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, deform_groups, bias)
        self.init_weights()

    def init_weights(self) -> None:
        """Uniform(±1/sqrt(C·K)) weight and zero bias, as MMCV."""
        bound = 1.0 / math.sqrt(self.in_channels * math.prod(self.kernel_size))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        """``x [N, C, H, W]``, ``offset [N, D * 2 * K, Ho, Wo]``, ``mask [N, D * K, Ho, Wo]``
        → ``[N, O, Ho, Wo]``."""
        return self._deform(x, offset, mask)


@MODELS.register_module(name=['DCNv2', 'ModulatedDeformConv2dPack'])
class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    """DCNv2 predicting offsets and mask with ``conv_offset`` (zero-initialised).

    ``conv_offset`` has D * 3 * K outputs: the first two thirds are the offsets (MMCV's
    layout), the last third the mask logits (sigmoid, 0.5 at initialisation).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_offset = self._offset_conv(3)
        self.init_weights()

    def init_weights(self) -> None:
        """Weight as :class:`ModulatedDeformConv2d`; zero ``conv_offset``."""
        super().init_weights()
        if hasattr(self, 'conv_offset'):
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x [N, C, H, W]`` → ``[N, O, Ho, Wo]``."""
        out = self.conv_offset(x)  # [N, D * 3 * K, Ho, Wo]
        split = 2 * self.deform_groups * math.prod(self.kernel_size)
        return self._deform(x, out[:, :split], out[:, split:].sigmoid())


def build_conv_or_dcn(cfg: dict | None, *args, **kwargs) -> nn.Module:
    """:func:`mmcv.cnn.build_conv_layer` that also finds fcosdet's ``DCN`` / ``DCNv2``.

    MMCV looks a string ``type`` up in the registry of the current default scope only; this
    resolves it in fcosdet's registry first, so the deformable convs build in any scope.
    """
    return build_conv_layer(resolve_conv_cfg(cfg), *args, **kwargs)


def resolve_conv_cfg(cfg: dict | None) -> dict | None:
    """Copy of a conv config whose string ``type`` is replaced by the class registered in
    fcosdet's MODELS (or its parents); None stays None."""
    if cfg is None or not isinstance(cfg.get('type'), str):
        return cfg
    layer = MODELS.get(cfg['type'])
    if layer is None:
        raise KeyError(f"conv config: unknown type {cfg['type']!r}")
    return dict(cfg, type=layer)
