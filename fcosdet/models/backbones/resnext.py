"""ResNeXt backbone (Xie et al., CVPR 2017): a ResNet whose bottlenecks use grouped 3x3 convs.

Shape letters: N images, H, W input height/width.
"""
from __future__ import annotations

from fcosdet.registry import MODELS

from .res_blocks import Bottleneck
from .resnet import ResNet


@MODELS.register_module()
class ResNeXt(ResNet):
    """ResNeXt backbone; X-101-64x4d is ``depth=101, groups=64, base_width=4``.

    The 3x3 conv of a block with ``planes`` inner channels (64, 128, 256, 512 for the four
    stages) has width ``floor(planes * base_width / base_channels) * groups`` and ``groups``
    groups. All other arguments are those of :class:`ResNet`; depth must be 50, 101 or 152.

    Args:
        groups: Cardinality of the grouped 3x3 convs.
        base_width: Channels of one group in the first stage.
        **kwargs: Arguments of :class:`ResNet`.
    """

    arch_settings = {depth: setting for depth, setting in ResNet.arch_settings.items()
                     if setting[0] is Bottleneck}

    def __init__(self, groups: int = 1, base_width: int = 4, **kwargs) -> None:
        if groups < 1 or base_width < 1:
            raise ValueError(f'ResNeXt: groups={groups!r} and base_width={base_width!r} must be '
                             'positive integers')
        self.groups = groups
        self.base_width = base_width
        # Plain attributes set before ``super().__init__`` because ResNet builds its stages there.
        super().__init__(**kwargs)

    def _block_kwargs(self) -> dict:
        """Pass the cardinality and group width to every bottleneck."""
        return dict(groups=self.groups, base_width=self.base_width,
                    base_channels=self.base_channels)
