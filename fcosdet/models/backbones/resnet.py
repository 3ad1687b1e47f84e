"""ResNet backbone (He et al., CVPR 2016) with MMDetection 3.x state-dict names.

Shape letters: N images, H, W input height/width. Stage i (0-based) has stride ``4 * 2**i`` with
the default strides and ``base_channels * 2**i * expansion`` channels.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from fcosdet.models.layers.deform_conv import DeformConv2dPack, ModulatedDeformConv2dPack
from fcosdet.registry import MODELS

from .res_blocks import STYLES, BasicBlock, Bottleneck, make_res_layer


@MODELS.register_module()
class ResNet(BaseModule):
    """ResNet backbone returning the feature maps of the stages in ``out_indices``.

    Args:
        depth: 18, 34 (basic blocks), 50, 101 or 152 (bottlenecks).
        in_channels: Input image channels.
        base_channels: Planes of the first stage (and channels of the stem).
        num_stages: Number of residual stages, 1 to 4.
        strides: Stride of the first block of every stage.
        dilations: Dilation of every stage.
        out_indices: Stages (0-based) whose outputs are returned, in increasing order.
        style: 'pytorch' (stride on the 3x3 conv) or 'caffe' (stride on the first 1x1 conv).
        frozen_stages: -1 freezes nothing, 0 the stem, i the stem and stages 1..i; frozen parts
            are in eval mode with ``requires_grad=False`` and stay so across ``train()``.
        conv_cfg: Conv layer config (None: ``nn.Conv2d``).
        norm_cfg: Norm layer config, e.g. ``dict(type='BN', requires_grad=True)``.
        norm_eval: Keep every BatchNorm layer in eval mode (frozen running stats) in ``train()``.
        dcn: Deformable conv config for the 3x3 convs of the bottlenecks, e.g.
            ``dict(type='DCNv2', deform_groups=1, fallback_on_stride=False)``, or None.
        stage_with_dcn: Per stage, whether its bottlenecks use ``dcn``.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=...)``.
            None gives Kaiming init of convs and weight 1 / bias 0 of norms.
    """

    arch_settings: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }

    def __init__(self, depth: int, in_channels: int = 3, base_channels: int = 64,
                 num_stages: int = 4, strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 out_indices: Sequence[int] = (0, 1, 2, 3), style: str = 'pytorch',
                 frozen_stages: int = -1, conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None, norm_eval: bool = True,
                 dcn: dict | None = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 init_cfg: dict | list[dict] | None = None) -> None:
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg=init_cfg)
        self._check_args(depth, num_stages, strides, dilations, out_indices, style,
                         frozen_stages)
        self._check_dcn(dcn, stage_with_dcn, num_stages)
        self.depth = depth
        self.base_channels = base_channels
        self.num_stages = num_stages
        self.out_indices = tuple(out_indices)
        self.style = style
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        norm_cfg = dict(norm_cfg) if norm_cfg is not None else dict(type='BN', requires_grad=True)
        block, stage_blocks = self.arch_settings[depth]

        self.conv1 = build_conv_layer(conv_cfg, in_channels, base_channels, 7, stride=2,
                                      padding=3, bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, base_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        inplanes = base_channels
        self.res_layers: list[str] = []
        for i in range(num_stages):
            planes = base_channels * 2**i
            layer = make_res_layer(block, inplanes, planes, stage_blocks[i], strides[i],
                                   dilations[i], conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                                   style=style, **self._block_kwargs(),
                                   **(dict(dcn=dcn) if dcn and stage_with_dcn[i] else {}))
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
            inplanes = planes * block.expansion
        self.feat_dim = inplanes
        self._freeze_stages()

    def _check_args(self, depth: int, num_stages: int, strides: Sequence[int],
                    dilations: Sequence[int], out_indices: Sequence[int], style: str,
                    frozen_stages: int) -> None:
        """Raise a ValueError naming the bad key when an argument is out of range."""
        name = type(self).__name__
        if depth not in self.arch_settings:
            raise ValueError(f'{name}: invalid depth={depth!r}; expected one of '
                             f'{sorted(self.arch_settings)}')
        if not 1 <= num_stages <= 4:
            raise ValueError(f'{name}: num_stages must be in 1..4, got {num_stages!r}')
        if len(strides) != num_stages or len(dilations) != num_stages:
            raise ValueError(f'{name}: strides={tuple(strides)} and dilations='
                             f'{tuple(dilations)} must both have num_stages={num_stages} entries')
        if not out_indices or any(not 0 <= i < num_stages for i in out_indices):
            raise ValueError(f'{name}: out_indices={tuple(out_indices)} must be non-empty and '
                             f'within 0..{num_stages - 1}')
        if style not in STYLES:
            raise ValueError(f'{name}: invalid style={style!r}; expected one of {STYLES}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'{name}: frozen_stages must be in -1..{num_stages}, '
                             f'got {frozen_stages!r}')

    def _check_dcn(self, dcn: dict | None, stage_with_dcn: Sequence[bool],
                   num_stages: int) -> None:
        """Raise a ValueError naming the key when ``dcn`` / ``stage_with_dcn`` do not fit."""
        name = type(self).__name__
        if dcn is None:
            return
        if not isinstance(dcn, dict) or 'type' not in dcn:
            raise ValueError(f"{name}: dcn must be a dict with a 'type', got {dcn!r}")
        if len(stage_with_dcn) != num_stages:
            raise ValueError(f'{name}: stage_with_dcn={tuple(stage_with_dcn)} must have '
                             f'num_stages={num_stages} entries')

    def _block_kwargs(self) -> dict:
        """Extra keyword arguments for the residual blocks (none for a plain ResNet)."""
        return {}

    @property
    def norm1(self) -> nn.Module:
        """Norm layer of the stem."""
        return getattr(self, self.norm1_name)

    def _freeze_stages(self) -> None:
        """Put the stem and stages 1..frozen_stages in eval mode without gradients."""
        frozen: list[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.norm1]
        frozen += [getattr(self, f'layer{i}') for i in range(1, self.frozen_stages + 1)]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then zero the offset convs of the deformable convs unless the
        weights come from a checkpoint: the Kaiming rule for every ``Conv2d`` would otherwise
        randomise them, while DCN starts from zero offsets (a plain conv)."""
        super().init_weights()
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        if any(cfg and cfg.get('type') == 'Pretrained' for cfg in cfgs):
            return
        for module in self.modules():
            if isinstance(module, (DeformConv2dPack, ModulatedDeformConv2dPack)):
                nn.init.zeros_(module.conv_offset.weight)
                nn.init.zeros_(module.conv_offset.bias)

    def train(self, mode: bool = True) -> ResNet:
        """Set train/eval mode, keeping frozen stages (and BN layers if ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Compute the stage outputs.

        Args:
            x: Images of shape [N, in_channels, H, W].

        Returns:
            One map per entry of ``out_indices``; stage i has shape
            [N, base_channels * 2**i * expansion, H / (4 * 2**i), W / (4 * 2**i)] with the
            default strides (sizes rounded up).
        """
        x = self.maxpool(self.relu(self.norm1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
