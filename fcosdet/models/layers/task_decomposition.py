"""TOOD's task decomposition: layer attention over the stacked task-interactive features.

Shape letters: N images, S stacked layers, F channels of each layer (``feat_channels``),
H/W feature height/width.
"""
import copy

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from torch import Tensor


class TaskDecomposition(nn.Module):
    """Per image, one sigmoid weight per stacked layer from the globally pooled features (1x1
    conv → ReLU → 1x1 conv → sigmoid), the layers scaled by their weights, then a 1x1
    reduction conv → norm → ReLU to F channels (one instance per task: ``cls_decomp``,
    ``reg_decomp``, MMDetection's names).

    The weights scale the reduction kernel instead of the features (one batched matrix product,
    no ``[N, S·F, H, W]`` copy); the result is the same.

    Args:
        feat_channels (int): F.
        stacked_convs (int): S.
        la_down_rate (int): S·F divided by this is the hidden width of the attention (TOOD: 8·S).
        conv_cfg (dict | None): Conv config of the reduction conv (only a plain conv).
        norm_cfg (dict | None): Norm after the reduction; without one the conv has a bias.
    """

    def __init__(self, feat_channels: int, stacked_convs: int, la_down_rate: int = 8,
                 conv_cfg: dict | None = None, norm_cfg: dict | None = None) -> None:
        super().__init__()
        self.feat_channels = feat_channels
        self.stacked_convs = stacked_convs
        self.in_channels = feat_channels * stacked_convs
        self.layer_attention = nn.Sequential(
            nn.Conv2d(self.in_channels, self.in_channels // la_down_rate, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.in_channels // la_down_rate, stacked_convs, 1),
            nn.Sigmoid())
        self.reduction_conv = ConvModule(
            self.in_channels, feat_channels, 1, conv_cfg=copy.deepcopy(conv_cfg),
            norm_cfg=copy.deepcopy(norm_cfg), bias=norm_cfg is None)

    def init_weights(self) -> None:
        """N(0, 0.001) attention convs and N(0, 0.01) reduction conv, zero biases (TOOD's)."""
        for module in self.layer_attention:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0, 0.001)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.reduction_conv.conv.weight, 0, 0.01)
        if self.reduction_conv.conv.bias is not None:
            nn.init.zeros_(self.reduction_conv.conv.bias)

    def forward(self, feat: Tensor, avg_feat: Tensor | None = None) -> Tensor:
        """Task features ``[N, F, H, W]`` from the stacked features ``feat [N, S·F, H, W]``
        (``avg_feat [N, S·F, 1, 1]``: their global average, shared by both tasks)."""
        num_images, _, height, width = feat.shape
        if avg_feat is None:
            avg_feat = feat.mean(dim=(2, 3), keepdim=True)
        weight = self.layer_attention(avg_feat)  # [N, S, 1, 1]
        conv = self.reduction_conv.conv
        kernel = conv.weight.reshape(1, self.feat_channels, self.stacked_convs,
                                     self.feat_channels)
        kernel = (weight.reshape(num_images, 1, self.stacked_convs, 1) * kernel).reshape(
            num_images, self.feat_channels, self.in_channels)
        out = torch.bmm(kernel, feat.reshape(num_images, self.in_channels, height * width))
        out = out.reshape(num_images, self.feat_channels, height, width)
        if conv.bias is not None:  # no norm: the conv's own bias (MMDetection drops it)
            out = out + conv.bias.reshape(1, -1, 1, 1)
        if self.reduction_conv.with_norm:
            out = self.reduction_conv.norm(out)
        return self.reduction_conv.activate(out)
