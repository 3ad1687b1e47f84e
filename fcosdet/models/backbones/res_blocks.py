"""Residual blocks of ResNet / ResNeXt and the builder of one residual stage.

Shape letters: N images, H, W feature height/width.

Module names follow the MMDetection 3.x state-dict layout: ``conv1``, ``bn1``, ``conv2``, ``bn2``
(``conv3``, ``bn3`` for bottlenecks) and ``downsample.0`` (1x1 conv) / ``downsample.1`` (norm).
Norm layers take the name :func:`mmcv.cnn.build_norm_layer` gives them (``bn1`` for BN, ``gn1`` for
GN), so checkpoints of both kinds load unchanged.
"""
from __future__ import annotations

import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from torch import Tensor

from fcosdet.models.layers.deform_conv import build_conv_or_dcn

STYLES = ('pytorch', 'caffe')


def _add_norm(module: nn.Module, norm_cfg: dict, channels: int, index: int) -> str:
    """Build a norm layer, attach it to ``module`` under its canonical name and return the name."""
    name, norm = build_norm_layer(norm_cfg, channels, postfix=index)
    module.add_module(name, norm)
    return name


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34).

    Args:
        inplanes: Input channels.
        planes: Output channels (``expansion`` is 1).
        stride: Stride of the first 3x3 conv.
        dilation: Dilation (and padding) of both 3x3 convs.
        downsample: Projection of the identity path, or None when shapes already match.
        style: 'pytorch' or 'caffe'; has no effect on a basic block.
        conv_cfg: Conv layer config for :func:`mmcv.cnn.build_conv_layer` (None: ``nn.Conv2d``).
        norm_cfg: Norm layer config for :func:`mmcv.cnn.build_norm_layer`.
        dcn: Must be None: basic blocks have no deformable variant (as in MMDetection).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, style: str = 'pytorch',
                 conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None, dcn: dict | None = None) -> None:
        super().__init__()
        if dcn is not None:
            raise ValueError(f'BasicBlock: dcn={dcn!r} is not supported; deformable convs need '
                             'bottleneck blocks (depth 50, 101 or 152)')
        norm_cfg = norm_cfg if norm_cfg is not None else dict(type='BN')
        self.conv1 = build_conv_layer(conv_cfg, inplanes, planes, 3, stride=stride,
                                      padding=dilation, dilation=dilation, bias=False)
        self.norm1_name = _add_norm(self, norm_cfg, planes, 1)
        self.conv2 = build_conv_layer(conv_cfg, planes, planes, 3, padding=dilation,
                                      dilation=dilation, bias=False)
        self.norm2_name = _add_norm(self, norm_cfg, planes, 2)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Input of shape [N, inplanes, H, W].

        Returns:
            Tensor of shape [N, planes, H / stride, W / stride].
        """
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(getattr(self, self.norm1_name)(self.conv1(x)))
        out = getattr(self, self.norm2_name)(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (optionally grouped) and 1x1 expand convs with a residual connection.

    The stride sits on the 3x3 conv for ``style='pytorch'`` and on the first 1x1 conv for
    ``style='caffe'``. With ``groups > 1`` (ResNeXt) the inner width is
    ``floor(planes * base_width / base_channels) * groups``; otherwise it is ``planes``.

    Args:
        inplanes: Input channels.
        planes: Inner channels of a plain ResNet block; output is ``planes * 4``.
        stride: Spatial stride of the block.
        dilation: Dilation (and padding) of the 3x3 conv.
        downsample: Projection of the identity path, or None when shapes already match.
        style: 'pytorch' or 'caffe'.
        conv_cfg: Conv layer config (None: ``nn.Conv2d``).
        norm_cfg: Norm layer config.
        groups: Groups of the 3x3 conv (cardinality).
        base_width: Width of one group at ``planes == base_channels``.
        base_channels: Planes of the first stage, the reference of ``base_width``.
        dcn: Config of a deformable 3x3 conv, e.g. ``dict(type='DCNv2', deform_groups=1,
            fallback_on_stride=False)``, or None. As in MMDetection, ``fallback_on_stride=True``
            keeps the plain conv (in every block given this config, strided or not).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, style: str = 'pytorch',
                 conv_cfg: dict | None = None, norm_cfg: dict | None = None,
                 groups: int = 1, base_width: int = 4, base_channels: int = 64,
                 dcn: dict | None = None) -> None:
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"Bottleneck: style must be one of {STYLES}, got '{style}'")
        dcn = dict(dcn) if dcn is not None else None
        if dcn is not None and dcn.pop('fallback_on_stride', False):
            dcn = None
        if dcn is not None and conv_cfg is not None:
            raise ValueError(f'Bottleneck: conv_cfg={conv_cfg!r} must be None with dcn={dcn!r}')
        norm_cfg = norm_cfg if norm_cfg is not None else dict(type='BN')
        width = planes if groups == 1 else planes * base_width // base_channels * groups
        conv1_stride, conv2_stride = (1, stride) if style == 'pytorch' else (stride, 1)
        self.conv1 = build_conv_layer(conv_cfg, inplanes, width, 1, stride=conv1_stride,
                                      bias=False)
        self.norm1_name = _add_norm(self, norm_cfg, width, 1)
        self.conv2 = build_conv_or_dcn(dcn if dcn is not None else conv_cfg, width, width, 3,
                                       stride=conv2_stride, padding=dilation,
                                       dilation=dilation, groups=groups, bias=False)
        self.norm2_name = _add_norm(self, norm_cfg, width, 2)
        self.conv3 = build_conv_layer(conv_cfg, width, planes * self.expansion, 1, bias=False)
        self.norm3_name = _add_norm(self, norm_cfg, planes * self.expansion, 3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Input of shape [N, inplanes, H, W].

        Returns:
            Tensor of shape [N, planes * 4, H / stride, W / stride].
        """
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(getattr(self, self.norm1_name)(self.conv1(x)))
        out = self.relu(getattr(self, self.norm2_name)(self.conv2(out)))
        out = getattr(self, self.norm3_name)(self.conv3(out))
        return self.relu(out + identity)


def make_res_layer(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int,
                   num_blocks: int, stride: int = 1, dilation: int = 1,
                   conv_cfg: dict | None = None, norm_cfg: dict | None = None,
                   **block_kwargs) -> nn.Sequential:
    """Build one residual stage: ``num_blocks`` blocks, the first one strided and projected.

    Args:
        block: Block class.
        inplanes: Input channels of the stage.
        planes: Planes of every block (output channels ``planes * block.expansion``).
        num_blocks: Number of blocks.
        stride: Stride of the first block.
        dilation: Dilation of every block.
        conv_cfg: Conv layer config.
        norm_cfg: Norm layer config.
        **block_kwargs: Further block arguments (``style``, ``groups``, ``base_width``, ...).

    Returns:
        ``nn.Sequential`` of blocks indexed ``0 .. num_blocks - 1``.
    """
    norm_cfg = norm_cfg if norm_cfg is not None else dict(type='BN')
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_channels:
        downsample = nn.Sequential(
            build_conv_layer(conv_cfg, inplanes, out_channels, 1, stride=stride, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1])
    blocks = [block(inplanes, planes, stride, dilation, downsample, conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg, **block_kwargs)]
    blocks += [block(out_channels, planes, 1, dilation, None, conv_cfg=conv_cfg,
                     norm_cfg=norm_cfg, **block_kwargs) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)
