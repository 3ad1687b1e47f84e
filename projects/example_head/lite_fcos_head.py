"""LiteFCOSHead: an FCOS head whose towers use depthwise-separable convolutions.

The example of ``docs/contribute_head.md``: a new head in its own file, registered in fcosdet's
``MODELS`` registry and selected from a config through ``custom_imports``. It changes one thing
about :class:`~fcosdet.models.dense_heads.FCOSHead`: every 3×3 tower conv becomes a depthwise
3×3 conv followed by a pointwise 1×1 conv, each with its own norm and ReLU. Targets, losses and
post-processing are inherited unchanged.

Shape letters: N images, L levels, C classes, H_l/W_l feature height/width.
"""
import copy

import torch.nn as nn
from mmcv.cnn import DepthwiseSeparableConvModule

from fcosdet.models.dense_heads import FCOSHead
from fcosdet.registry import MODELS


@MODELS.register_module()
class LiteFCOSHead(FCOSHead):
    """FCOS head with depthwise-separable tower convs (about 1/9 of a 3×3 conv's weights).

    A 3×3 conv from F to F channels has 9·F² weights; its depthwise-separable replacement has
    9·F + F², so at F = 256 the towers shrink about 8.7 times. Inputs, outputs, losses and
    predictions are exactly those of :class:`FCOSHead`: ``forward`` returns per level class
    logits ``[N, C, H_l, W_l]``, distances ``[N, 4, H_l, W_l]`` and centre-ness logits
    ``[N, 1, H_l, W_l]``.

    Args:
        **kwargs: The arguments of :class:`FCOSHead` (``num_classes``, ``in_channels``,
            ``feat_channels``, ``stacked_convs``, ``norm_cfg``, ...). With GroupNorm, both
            ``in_channels`` and ``feat_channels`` must be divisible by ``num_groups``, since
            the depthwise conv is normalised too.

    Module names: ``cls_convs.{i}.depthwise_conv.{conv,gn}`` and
    ``cls_convs.{i}.pointwise_conv.{conv,gn}`` (same for ``reg_convs``); the prediction convs
    ``conv_cls``, ``conv_reg``, ``conv_centerness`` and ``scales`` keep FCOSHead's names.
    """

    def _tower(self, stacked_convs: int, conv_bias: bool | str,
               norm_cfg: dict | None) -> nn.Sequential:
        """``stacked_convs`` × (depthwise 3×3 conv, norm, ReLU, pointwise 1×1 conv, norm, ReLU).

        Overrides the one method of FCOSHead that builds ``cls_convs`` and ``reg_convs``.
        """
        return nn.Sequential(*[
            DepthwiseSeparableConvModule(
                self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3,
                padding=1, bias=conv_bias, norm_cfg=copy.deepcopy(norm_cfg))
            for i in range(stacked_convs)
        ])
