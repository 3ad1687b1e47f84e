"""Feature Pyramid Network (Lin et al., CVPR 2017) with optional extra stride-2 levels.

Shape letters: N images, L output levels, H_l, W_l height/width of level l.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from fcosdet.registry import MODELS

EXTRA_CONV_SOURCES = ('on_input', 'on_lateral', 'on_output')


def _extra_convs_source(add_extra_convs: bool | str) -> str | None:
    """Normalise ``add_extra_convs``: None for max-pool levels, else the source of the first conv.

    Raises:
        ValueError: when the value is neither a bool nor one of ``EXTRA_CONV_SOURCES``.
    """
    if add_extra_convs is True:
        return 'on_input'
    if add_extra_convs is False:
        return None
    if isinstance(add_extra_convs, str) and add_extra_convs in EXTRA_CONV_SOURCES:
        return add_extra_convs
    raise ValueError(f'FPN: invalid add_extra_convs={add_extra_convs!r}; expected a bool or one '
                     f'of {EXTRA_CONV_SOURCES}')


@MODELS.register_module()
class FPN(BaseModule):
    """FPN: 1x1 lateral convs, nearest top-down fusion, 3x3 output convs and extra levels.

    Backbone levels ``start_level .. end_level`` are fused; the remaining ``num_outs`` levels are
    made by max-pooling (kernel 1, stride 2) of the last output when ``add_extra_convs`` is falsy,
    else by stride-2 3x3 convs whose first input is the last used backbone map ('on_input', also
    for True), the last lateral ('on_lateral') or the last FPN output ('on_output').

    Args:
        in_channels: Channels of every backbone map given to ``forward``.
        out_channels: Channels of every output level.
        num_outs: Number of output levels L.
        start_level: First backbone map used.
        end_level: Last backbone map used (inclusive); -1 means the last one. With an explicit
            end level no extra levels are added, so ``num_outs`` must equal the used levels.
        add_extra_convs: False, True, 'on_input', 'on_lateral' or 'on_output'.
        relu_before_extra_convs: Apply ReLU to the input of the 2nd and later extra convs.
        no_norm_on_lateral: Build the lateral convs without norm layer.
        conv_cfg: Conv layer config of every ``ConvModule``.
        norm_cfg: Norm layer config of every ``ConvModule`` (None: no norm, convs get a bias).
        act_cfg: Activation config of every ``ConvModule`` (None: no activation).
        upsample_cfg: Keyword arguments of ``F.interpolate`` for the top-down path; without
            ``scale_factor`` the upsampled map takes the size of the finer level.
        init_cfg: mmengine init config; default Xavier-uniform for convs.
    """

    def __init__(self, in_channels: list[int], out_channels: int, num_outs: int,
                 start_level: int = 0, end_level: int = -1,
                 add_extra_convs: bool | str = False, relu_before_extra_convs: bool = False,
                 no_norm_on_lateral: bool = False, conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None, act_cfg: dict | None = None,
                 upsample_cfg: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        if init_cfg is None:
            init_cfg = dict(type='Xavier', layer='Conv2d', distribution='uniform')
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.backbone_end_level = self._check_levels(start_level, end_level, num_outs)
        self.extra_source = _extra_convs_source(add_extra_convs)
        self.add_extra_convs = self.extra_source is not None
        self.relu_before_extra_convs = relu_before_extra_convs
        self.upsample_cfg = dict(upsample_cfg) if upsample_cfg is not None else dict(
            mode='nearest')

        conv_kwargs = dict(conv_cfg=conv_cfg, act_cfg=act_cfg, inplace=False)
        lateral_norm = None if no_norm_on_lateral else norm_cfg
        self.lateral_convs = nn.ModuleList(
            ConvModule(channels, out_channels, 1, norm_cfg=lateral_norm, **conv_kwargs)
            for channels in self.in_channels[start_level:self.backbone_end_level])
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg, **conv_kwargs)
            for _ in range(self.backbone_end_level - start_level))
        num_extra = num_outs - (self.backbone_end_level - start_level)
        if self.add_extra_convs:
            for i in range(num_extra):
                channels = out_channels
                if i == 0 and self.extra_source == 'on_input':
                    channels = self.in_channels[self.backbone_end_level - 1]
                self.fpn_convs.append(ConvModule(channels, out_channels, 3, stride=2, padding=1,
                                                 norm_cfg=norm_cfg, **conv_kwargs))

    def _check_levels(self, start_level: int, end_level: int, num_outs: int) -> int:
        """Validate the level arguments and return the exclusive end of the used backbone maps."""
        num_ins = len(self.in_channels)
        if not 0 <= start_level < num_ins:
            raise ValueError(f'FPN: start_level={start_level!r} must be in 0..{num_ins - 1} '
                             f'for in_channels={self.in_channels}')
        if end_level in (-1, num_ins - 1):
            if num_outs < num_ins - start_level:
                raise ValueError(f'FPN: num_outs={num_outs!r} must be at least '
                                 f'{num_ins - start_level} (backbone levels used)')
            return num_ins
        if not start_level <= end_level < num_ins:
            raise ValueError(f'FPN: end_level={end_level!r} must be -1 or in '
                             f'{start_level}..{num_ins - 1}')
        if num_outs != end_level - start_level + 1:
            raise ValueError(f'FPN: num_outs={num_outs!r} must equal end_level - start_level + 1 '
                             f'= {end_level - start_level + 1} when end_level is given')
        return end_level + 1

    def _top_down(self, laterals: list[Tensor]) -> list[Tensor]:
        """Add the upsampled coarser lateral to every finer one, coarsest first.

        Args:
            laterals: Lateral maps, each [N, out_channels, H_l, W_l], finest first.

        Returns:
            The fused maps with the same shapes.
        """
        fused = list(laterals)
        for i in range(len(fused) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(fused[i], **self.upsample_cfg)
            else:
                up = F.interpolate(fused[i], size=fused[i - 1].shape[2:], **self.upsample_cfg)
            fused[i - 1] = fused[i - 1] + up
        return fused

    def _extra_levels(self, inputs: tuple[Tensor, ...], laterals: list[Tensor],
                      outs: list[Tensor]) -> list[Tensor]:
        """Compute the levels beyond the backbone ones (stride 2 each).

        Args:
            inputs: Backbone maps given to ``forward``.
            laterals: Lateral maps before the top-down fusion.
            outs: FPN outputs of the backbone levels.

        Returns:
            ``num_outs - len(outs)`` maps, each [N, out_channels, H_l, W_l].
        """
        num_used = len(outs)
        if not self.add_extra_convs:
            extra = [F.max_pool2d(outs[-1], 1, stride=2)]
            for _ in range(num_used + 1, self.num_outs):
                extra.append(F.max_pool2d(extra[-1], 1, stride=2))
            return extra
        source = {'on_input': inputs[self.backbone_end_level - 1],
                  'on_lateral': laterals[-1],
                  'on_output': outs[-1]}[self.extra_source]
        extra = [self.fpn_convs[num_used](source)]
        for i in range(num_used + 1, self.num_outs):
            prev = F.relu(extra[-1]) if self.relu_before_extra_convs else extra[-1]
            extra.append(self.fpn_convs[i](prev))
        return extra

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Build the pyramid.

        Args:
            inputs: Backbone maps, one per ``in_channels`` entry, each [N, in_channels[i], H, W],
                finest first.

        Returns:
            L = ``num_outs`` maps, each [N, out_channels, H_l, W_l], finest first.
        """
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'FPN: got {len(inputs)} input maps but in_channels has '
                             f'{len(self.in_channels)} entries')
        laterals = [conv(inputs[i + self.start_level])
                    for i, conv in enumerate(self.lateral_convs)]
        fused = self._top_down(laterals)
        outs = [self.fpn_convs[i](x) for i, x in enumerate(fused)]
        if self.num_outs > len(outs):
            outs += self._extra_levels(inputs, laterals, outs)
        return tuple(outs)
